from __future__ import annotations

from textwrap import dedent

import pytest

from qweb.lib.codeindex.django_aware import analyze, is_django_project

PROJECT = {
    "manage.py": b"import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n"
    b"from django.core.management import execute_from_command_line\n",
    "mysite/__init__.py": b"",
    "mysite/settings.py": dedent(
        """
        INSTALLED_APPS = [
            "django.contrib.admin",
            "django.contrib.auth",
            "polls.apps.PollsConfig",
            "blog",
        ]
        ROOT_URLCONF = "mysite.urls"
        """
    ).encode(),
    "mysite/urls.py": dedent(
        """
        from django.contrib import admin
        from django.urls import include, path

        urlpatterns = [
            path("admin/", admin.site.urls),
            path("polls/", include("polls.urls")),
            path("blog/", include(("blog.urls", "blog"))),
        ]
        """
    ).encode(),
    "polls/__init__.py": b"",
    "polls/apps.py": dedent(
        """
        from django.apps import AppConfig

        class PollsConfig(AppConfig):
            name = "polls"
        """
    ).encode(),
    "polls/models.py": dedent(
        """
        from django.db import models

        class TimeStamped(models.Model):
            created = models.DateTimeField(auto_now_add=True)

            class Meta:
                abstract = True

        class Question(TimeStamped):
            question_text = models.CharField(max_length=200)

        class Choice(TimeStamped):
            question = models.ForeignKey(Question, on_delete=models.CASCADE)
            votes = models.IntegerField(default=0)

        class NotAModel:
            pass
        """
    ).encode(),
    "polls/views.py": dedent(
        """
        from django.shortcuts import render
        from django.views import generic

        from .models import Question

        def index(request):
            latest = Question.objects.order_by("-created")[:5]
            return render(request, "polls/index.html", {"latest": latest})

        class DetailView(generic.DetailView):
            model = Question
            template_name = "polls/detail.html"

        class ResultsView(generic.DetailView):
            model = Question
        """
    ).encode(),
    "polls/urls.py": dedent(
        """
        from django.urls import path

        from . import views

        app_name = "polls"
        urlpatterns = [
            path("", views.index, name="index"),
            path("<int:pk>/", views.DetailView.as_view(), name="detail"),
            path("<int:pk>/results/", views.ResultsView.as_view(), name="results"),
        ]
        """
    ).encode(),
    "polls/templates/polls/index.html": b"{% for q in latest %}{{ q }}{% endfor %}",
    "polls/templates/polls/detail.html": b"{{ question }}",
    "polls/templates/polls/question_detail.html": b"{{ question }}",
    "blog/__init__.py": b"",
    "blog/models.py": dedent(
        """
        from django.contrib.auth.models import AbstractUser
        from django.db.models import Model, TextField

        class Author(AbstractUser):
            pass

        class Post(Model):
            body = TextField()
        """
    ).encode(),
    "blog/views.py": dedent(
        """
        from django.views.generic import TemplateView

        class HomeView(TemplateView):
            template_name = "blog/home.html"

        def archive(request, year):
            from django.template.response import TemplateResponse
            return TemplateResponse(request, "blog/archive.html", {"year": year})
        """
    ).encode(),
    "blog/urls.py": dedent(
        """
        from django.urls import path, re_path

        from blog.views import HomeView, archive

        urlpatterns = [
            path("", HomeView.as_view(), name="home"),
            re_path(r"^archive/(?P<year>[0-9]{4})/$", archive, name="archive"),
        ]
        """
    ).encode(),
    "templates/blog/home.html": b"<h1>Blog</h1>",
    "blog/templates/blog/archive.html": b"{{ year }}",
}


@pytest.fixture(scope="module")
def project():
    return analyze(PROJECT)


def _link(project, url_name):
    return next(link for link in project.links if link.url_name == url_name)


def test_it_detects_a_django_project_and_not_a_plain_one():
    assert is_django_project(PROJECT)
    assert not is_django_project({"lib/util.py": b"def f():\n    return 1\n"})
    assert analyze({"lib/util.py": b"x = 1\n"}).detected is False


def test_it_reads_the_settings_module(project):
    (settings,) = project.settings
    assert settings.path == "mysite/settings.py"
    assert settings.module == "mysite.settings"
    assert settings.root_urlconf == "mysite.urls"
    assert "polls.apps.PollsConfig" in settings.installed_apps


def test_it_finds_both_apps_with_their_labels(project):
    assert [(app.label, app.directory, app.config_class) for app in project.apps] == [
        ("blog", "blog", None),
        ("polls", "polls", "PollsConfig"),
    ]


def test_it_finds_models_through_project_base_classes_and_known_bases(project):
    models = {model.name: model for model in project.models}
    assert set(models) == {"TimeStamped", "Question", "Choice", "Author", "Post"}
    assert models["TimeStamped"].abstract
    assert models["Choice"].app_label == "polls"
    choice_fields = {field.name: field for field in models["Choice"].fields}
    assert choice_fields["question"].field_type == "ForeignKey"
    assert choice_fields["question"].related_to == "Question"
    assert choice_fields["votes"].line == 15


def test_it_joins_include_prefixes_into_full_routes_with_namespaces(project):
    routes = {pattern.full_route: pattern for pattern in project.url_patterns if pattern.view}
    assert set(routes) >= {
        "polls/",
        "polls/<int:pk>/",
        "polls/<int:pk>/results/",
        "blog/",
        "blog/archive/(?P<year>[0-9]{4})/$",
    }
    assert routes["polls/<int:pk>/"].namespace == "polls"
    assert routes["blog/archive/(?P<year>[0-9]{4})/$"].kind == "re_path"
    includes = [pattern.include for pattern in project.url_patterns if pattern.include]
    assert includes == ["polls.urls", "blog.urls"]


def test_it_links_a_function_view_to_its_rendered_template(project):
    link = _link(project, "polls:index")
    assert link.route == "polls/"
    assert (link.view_path, link.view_symbol) == ("polls/views.py", "index")
    assert link.template_paths == ("polls/templates/polls/index.html",)


def test_it_links_a_class_view_to_its_template_name(project):
    link = _link(project, "polls:detail")
    assert (link.view_path, link.view_symbol) == ("polls/views.py", "DetailView")
    assert link.template_names == ("polls/detail.html",)
    assert link.template_paths == ("polls/templates/polls/detail.html",)


def test_it_derives_the_default_template_of_a_generic_view(project):
    link = _link(project, "polls:results")
    assert link.template_names == ("polls/question_detail.html",)
    assert link.template_paths == ("polls/templates/polls/question_detail.html",)


def test_it_resolves_views_imported_by_name_and_project_level_templates(project):
    home = _link(project, "blog:home")
    assert (home.view_path, home.view_symbol) == ("blog/views.py", "HomeView")
    assert home.template_paths == ("templates/blog/home.html",)
    archive = _link(project, "blog:archive")
    assert archive.template_paths == ("blog/templates/blog/archive.html",)


def test_it_leaves_views_outside_the_repository_unresolved(project):
    admin = next(p for p in project.url_patterns if p.full_route == "admin/")
    assert admin.view is not None
    assert admin.view.expression == "admin.site.urls"
    assert admin.view.path is None


def test_it_classifies_views_as_functions_and_classes(project):
    kinds = {(view.path, view.name): view.kind for view in project.views}
    assert kinds[("polls/views.py", "index")] == "function"
    assert kinds[("polls/views.py", "DetailView")] == "class"
    assert kinds[("blog/views.py", "archive")] == "function"


def test_it_names_templates_relative_to_their_templates_folder(project):
    assert project.templates["polls/index.html"] == ("polls/templates/polls/index.html",)
    assert project.templates["blog/home.html"] == ("templates/blog/home.html",)


def test_it_skips_files_that_do_not_parse_and_survives_a_root_package():
    files = dict(PROJECT)
    files["polls/broken.py"] = b"def (:\n"
    files["__init__.py"] = b"from . import mysite\n"
    assert analyze(files).detected
