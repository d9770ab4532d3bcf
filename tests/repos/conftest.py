from __future__ import annotations

import io
import tarfile
import zipfile

import pytest


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    """Each test gets its own data directory, so 'nothing left behind' can be checked."""
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


def make_zip(files: dict[str, bytes | str], path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)


def make_tar(files: dict[str, bytes | str], path, mode: str = "w:gz") -> None:
    with tarfile.open(path, mode) as archive:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


# A small Django project: the context builder's and chat's test repository.
SHOP = {
    "shop/manage.py": (
        "import django\nfrom django.core.management import execute_from_command_line\n"
    ),
    "shop/shop/settings.py": (
        "INSTALLED_APPS = ['orders']\nROOT_URLCONF = 'shop.urls'\n"
        "TEMPLATES = [{'BACKEND': 'django.template.backends.django.DjangoTemplates'}]\n"
    ),
    "shop/shop/urls.py": (
        "from django.urls import include, path\n\n"
        "urlpatterns = [path('orders/', include('orders.urls'))]\n"
    ),
    "shop/orders/__init__.py": "",
    "shop/orders/apps.py": (
        "from django.apps import AppConfig\n\n\nclass OrdersConfig(AppConfig):\n"
        "    name = 'orders'\n"
    ),
    "shop/orders/models.py": (
        "from django.db import models\n\n\nclass Invoice(models.Model):\n"
        "    amount = models.DecimalField(max_digits=9, decimal_places=2)\n\n"
        "    def total_with_tax(self):\n        return self.amount * 2\n"
    ),
    "shop/orders/urls.py": (
        "from django.urls import path\n\nfrom orders import views\n\n"
        "urlpatterns = [path('<int:pk>/receipt/', views.receipt, name='receipt')]\n"
    ),
    "shop/orders/views.py": (
        "from django.shortcuts import render\n\nfrom orders.models import Invoice\n\n\n"
        "def receipt(request, pk):\n"
        "    invoice = Invoice.objects.get(pk=pk)\n"
        "    return render(request, 'orders/receipt.html', {'invoice': invoice})\n"
    ),
    "shop/orders/templates/orders/receipt.html": "<h1>Receipt</h1>{{ invoice.amount }}\n",
    "shop/docs/notes.txt": "Nothing about receipts here, only deployment notes.\n",
}


def shop_repository(*, workspace, user, tmp_path):
    """``SHOP`` imported through the real services and indexed."""
    from apps.repos import services
    from apps.repos.indexing import index_commit

    archive = tmp_path / "shop.zip"
    make_zip(SHOP, archive)
    repository = services.repository_import_archive(
        workspace=workspace, user=user, name="Shop", archive_path=archive, filename="shop.zip"
    )
    index_commit(repository=repository, sha=repository.head_sha)
    return repository
