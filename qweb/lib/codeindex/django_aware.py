"""Django awareness: settings, apps, models, URL patterns, views and templates, linked up.

Works on a mapping of repository paths to bytes with Python's ``ast``; the analysed project
is never imported or run, so its settings, models and URL modules cannot execute code on
the server. Results are best-effort static readings: anything computed at run time (a
route built in a loop, a view chosen by a setting) is reported as unresolved, not guessed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

# Bases that make a class a model even when the project's own base classes are not visible.
KNOWN_MODEL_BASES = frozenset(
    {
        "Model",
        "AbstractUser",
        "AbstractBaseUser",
        "PermissionsMixin",
        "MPTTModel",
        "TimeStampedModel",
        "PolymorphicModel",
    }
)
# Generic class-based views and the suffix of the template Django picks when a view sets
# ``model`` but no ``template_name`` (``<app_label>/<model>_<suffix>.html``).
_GENERIC_VIEW_TEMPLATE_SUFFIX = {
    "ListView": "_list",
    "DetailView": "_detail",
    "CreateView": "_form",
    "UpdateView": "_form",
    "DeleteView": "_confirm_delete",
    "ArchiveIndexView": "_archive",
    "YearArchiveView": "_archive_year",
    "MonthArchiveView": "_archive_month",
    "DayArchiveView": "_archive_day",
    "DateDetailView": "_detail",
}
_VIEW_BASE_HINTS = ("View", "Mixin")
_URL_FUNCTIONS = {"path": "path", "re_path": "re_path", "url": "re_path"}
# Calls whose first string argument (or ``template_name=``) names a template.
_TEMPLATE_CALLS = frozenset(
    {
        "render",
        "render_to_response",
        "render_to_string",
        "TemplateResponse",
        "SimpleTemplateResponse",
        "get_template",
        "select_template",
    }
)
_TEMPLATE_DIR = "templates"
# "class Name(Base, other.Base):" at any indentation; bases may span lines.
_CLASS_HEADER = re.compile(rb"^[ \t]*class[ \t]+(\w+)[ \t]*\(([^)]*)\)", re.MULTILINE)
_PATTERN_WRAPPERS = frozenset({"i18n_patterns", "format_suffix_patterns"})


@dataclass(frozen=True, slots=True)
class SettingsModule:
    """A settings module and the settings that shape the rest of the analysis."""

    path: str
    module: str
    installed_apps: tuple[str, ...]
    root_urlconf: str | None


@dataclass(frozen=True, slots=True)
class DjangoApp:
    """An app: a package with an AppConfig or a models module."""

    label: str
    module: str
    directory: str
    config_class: str | None
    has_models: bool


@dataclass(frozen=True, slots=True)
class ModelField:
    """A model field declared in the class body."""

    name: str
    field_type: str
    line: int
    related_to: str | None = None


@dataclass(frozen=True, slots=True)
class DjangoModel:
    """A model class."""

    name: str
    path: str
    line: int
    bases: tuple[str, ...]
    app_label: str | None
    abstract: bool
    fields: tuple[ModelField, ...]


@dataclass(frozen=True, slots=True)
class ViewReference:
    """Where a URL pattern's view lives, as far as the source says."""

    expression: str
    module: str | None
    symbol: str | None
    path: str | None  # the repository file defining it; None when outside the repository
    line: int | None
    is_class: bool
    template_names: tuple[str, ...] = ()  # from ``as_view(template_name=...)``


@dataclass(frozen=True, slots=True)
class UrlPattern:
    """One ``path()``/``re_path()`` entry (or an ``include()``) of a URL configuration."""

    path: str
    module: str
    line: int
    kind: str  # "path" or "re_path"
    route: str | None
    full_route: str | None  # with the prefixes of the includes leading here
    name: str | None
    namespace: str | None
    view: ViewReference | None
    include: str | None  # module of an included URLconf


@dataclass(frozen=True, slots=True)
class DjangoView:
    """A view function or class and the templates it renders."""

    name: str
    path: str
    line: int
    kind: str  # "function" or "class"
    bases: tuple[str, ...]
    template_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RouteLink:
    """URL pattern → view (file and symbol) → template files."""

    route: str | None
    url_name: str | None
    urlconf_path: str
    line: int
    view_path: str | None
    view_symbol: str | None
    template_names: tuple[str, ...]
    template_paths: tuple[str, ...]


@dataclass(slots=True)
class DjangoProject:
    """Everything found about a Django project in a set of files."""

    detected: bool
    manage_py: tuple[str, ...] = ()
    settings: list[SettingsModule] = field(default_factory=list)
    apps: list[DjangoApp] = field(default_factory=list)
    models: list[DjangoModel] = field(default_factory=list)
    url_patterns: list[UrlPattern] = field(default_factory=list)
    views: list[DjangoView] = field(default_factory=list)
    templates: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name → paths
    links: list[RouteLink] = field(default_factory=list)


# ----------------------------------------------------------------------------- modules


class _ModuleIndex:
    """Maps dotted module names to repository paths, whatever folder the project sits in."""

    def __init__(self, python_paths: list[str], roots: list[str]) -> None:
        self._by_suffix: dict[str, list[str]] = {}
        self.module_of: dict[str, str] = {}
        self._roots = roots
        for path in python_paths:
            parts = list(PurePosixPath(path).with_suffix("").parts)
            if parts and parts[-1] == "__init__":
                parts.pop()
            if not parts:
                # A package's own "__init__.py" at the repository root has no import name.
                self.module_of[path] = ""
                continue
            # Every suffix is a possible import name: "src/mysite/urls.py" may be imported
            # as "mysite.urls" (src layout) or "src.mysite.urls".
            for start in range(len(parts)):
                self._by_suffix.setdefault(".".join(parts[start:]), []).append(path)
            self.module_of[path] = self._module_name(path, parts)

    def _module_name(self, path: str, parts: list[str]) -> str:
        for root in self._roots:
            prefix = PurePosixPath(root).parts
            if tuple(parts[: len(prefix)]) == prefix:
                return ".".join(parts[len(prefix) :]) or parts[-1]
        return ".".join(parts)

    def resolve(self, module: str) -> str | None:
        """The file of a dotted module, preferring one under a ``manage.py`` folder."""
        candidates = self._by_suffix.get(module)
        if not candidates:
            return None
        for candidate in sorted(candidates, key=lambda p: (len(p), p)):
            if self.module_of.get(candidate) == module:
                return candidate
        return sorted(candidates, key=lambda p: (len(p), p))[0]


def _resolve_relative(module_name: str, path: str, level: int, target: str | None) -> str:
    """Absolute module named by ``from <dots><target> import ...`` inside ``module_name``."""
    package = module_name.split(".")
    if PurePosixPath(path).name != "__init__.py":
        package = package[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)]
    return ".".join([*package, target] if target else package)


@dataclass(slots=True)
class _Imports:
    """Names bound by a module's imports: alias → module, and alias → (module, name)."""

    modules: dict[str, str] = field(default_factory=dict)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)


def _read_imports(tree: ast.Module, module_name: str, path: str) -> _Imports:
    imports = _Imports()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    imports.modules[alias.asname] = alias.name
                else:
                    imports.modules[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(module_name, path, node.level, node.module)
            for alias in node.names:
                bound = alias.asname or alias.name
                # "from . import views" binds a module; "from .views import index" a name.
                imports.names[bound] = (base, alias.name)
    return imports


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _string(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _strings(node: ast.AST | None) -> tuple[str, ...]:
    if isinstance(node, ast.List | ast.Tuple):
        return tuple(value for item in node.elts if (value := _string(item)) is not None)
    value = _string(node)
    return (value,) if value is not None else ()


def _call_name(node: ast.Call) -> str | None:
    dotted = _dotted(node.func)
    return dotted.rsplit(".", 1)[-1] if dotted else None


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


# ----------------------------------------------------------------------------- analysis


class _Analysis:
    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files
        self.python_paths = sorted(path for path in files if path.endswith(".py"))
        # Parsing is most of the cost, so files are parsed on first use and only those a
        # byte search says can matter (settings, URLconfs, models, views) ever are.
        self._trees: dict[str, ast.Module | None] = {}
        self._imports: dict[str, _Imports] = {}
        self.manage_py = tuple(
            sorted(path for path in files if PurePosixPath(path).name == "manage.py")
        )
        roots = sorted({str(PurePosixPath(path).parent) for path in self.manage_py}, key=len)
        roots = [root for root in roots if root != "."]
        self.modules = _ModuleIndex(self.python_paths, roots[::-1])

    def tree(self, path: str | None) -> ast.Module | None:
        """The parsed module at ``path``; None when it is not Python or does not parse."""
        if path is None or path not in self.files or not path.endswith(".py"):
            return None
        if path not in self._trees:
            try:
                self._trees[path] = ast.parse(self.files[path], filename=path)
            except (SyntaxError, ValueError):
                # Skipped, never fatal: repositories carry Python 2 leftovers and
                # templates named .py.
                self._trees[path] = None
        return self._trees[path]

    def trees_containing(self, *needles: bytes) -> list[tuple[str, ast.Module]]:
        """Parsed modules whose source contains any of the byte strings."""
        found: list[tuple[str, ast.Module]] = []
        for path in self.python_paths:
            data = self.files[path]
            if any(needle in data for needle in needles) and (tree := self.tree(path)):
                found.append((path, tree))
        return found

    def imports_of(self, path: str) -> _Imports:
        """What the imports of ``path`` bind."""
        if path not in self._imports:
            tree = self.tree(path)
            self._imports[path] = (
                _read_imports(tree, self.modules.module_of[path], path) if tree else _Imports()
            )
        return self._imports[path]

    # -- settings and apps

    def settings(self) -> list[SettingsModule]:
        found: list[SettingsModule] = []
        for path, tree in self.trees_containing(b"INSTALLED_APPS", b"ROOT_URLCONF"):
            installed: list[str] = []
            root_urlconf: str | None = None
            has_installed = False
            for node in tree.body:
                target, value = _assignment(node)
                if target == "INSTALLED_APPS":
                    has_installed = True
                    installed.extend(_strings(value))
                elif target == "ROOT_URLCONF":
                    root_urlconf = _string(value)
            if has_installed or root_urlconf:
                found.append(
                    SettingsModule(
                        path=path,
                        module=self.modules.module_of[path],
                        installed_apps=tuple(installed),
                        root_urlconf=root_urlconf,
                    )
                )
        return found

    def apps(self, settings: list[SettingsModule]) -> list[DjangoApp]:
        installed = {app for module in settings for app in module.installed_apps}
        apps: dict[str, DjangoApp] = {}
        for path in self.python_paths:
            name = PurePosixPath(path).name
            directory = str(PurePosixPath(path).parent)
            if name == "apps.py":
                tree = self.tree(path) if b"AppConfig" in self.files[path] else None
                for node in tree.body if tree else ():
                    if isinstance(node, ast.ClassDef) and _base_names(node) & {"AppConfig"}:
                        attributes = _class_strings(node)
                        module = (
                            attributes.get("name")
                            or self.modules.module_of[path].rpartition(".")[0]
                        )
                        label = attributes.get("label") or module.rsplit(".", 1)[-1]
                        apps[directory] = DjangoApp(
                            label=label,
                            module=module,
                            directory=directory,
                            config_class=node.name,
                            has_models=self._has_models(directory),
                        )
            elif name in ("models.py", "__init__.py") and directory not in apps:
                is_models_package = name == "__init__.py" and directory.endswith("/models")
                if name == "models.py" or is_models_package:
                    app_dir = (
                        directory if name == "models.py" else str(PurePosixPath(directory).parent)
                    )
                    module = self.modules.module_of.get(path, "").removesuffix(".models")
                    if app_dir not in apps:
                        apps[app_dir] = DjangoApp(
                            label=module.rsplit(".", 1)[-1],
                            module=module,
                            directory=app_dir,
                            config_class=None,
                            has_models=True,
                        )
        # An app listed in INSTALLED_APPS by its AppConfig path counts as that app.
        result = sorted(apps.values(), key=lambda app: app.directory)
        if installed:
            listed = [
                app
                for app in result
                if app.module in installed
                or any(entry.startswith(app.module + ".apps.") for entry in installed)
            ]
            return listed or result
        return result

    def _has_models(self, directory: str) -> bool:
        return f"{directory}/models.py" in self.files or f"{directory}/models/__init__.py" in (
            self.files
        )

    # -- models

    def models(self, apps: list[DjangoApp]) -> list[DjangoModel]:
        classes: dict[str, list[tuple[str, ast.ClassDef]]] = {}
        for path in self._files_with_candidate_models():
            tree = self.tree(path)
            for node in tree.body if tree else ():
                if isinstance(node, ast.ClassDef):
                    classes.setdefault(node.name, []).append((path, node))
        # Models are classes deriving from a known base, or from a model found so far:
        # iterate to a fixed point so chains of project base classes are followed.
        model_names: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, definitions in classes.items():
                if name in model_names:
                    continue
                for path, node in definitions:
                    bases = _base_names(node)
                    if self._is_model_base(path, node, bases, model_names):
                        model_names.add(name)
                        changed = True
                        break
        models: list[DjangoModel] = []
        for name in sorted(model_names):
            for path, node in classes[name]:
                bases = _base_names(node)
                if not self._is_model_base(path, node, bases, model_names):
                    continue
                models.append(
                    DjangoModel(
                        name=name,
                        path=path,
                        line=node.lineno,
                        bases=tuple(sorted(bases)),
                        app_label=_app_label_for(path, apps),
                        abstract=_is_abstract(node),
                        fields=_model_fields(node),
                    )
                )
        return sorted(models, key=lambda model: (model.path, model.line))

    def _files_with_candidate_models(self) -> list[str]:
        """Files that may hold models, found by a regular expression instead of a parse."""
        bases_of: dict[str, set[str]] = {}
        classes_in: dict[str, list[str]] = {}
        for path in self.python_paths:
            for match in _CLASS_HEADER.finditer(self.files[path]):
                name = match.group(1).decode("ascii", "replace")
                bases = {
                    base.strip().rsplit(b".", 1)[-1].decode("ascii", "replace")
                    for base in match.group(2).split(b",")
                }
                bases_of.setdefault(name, set()).update(bases)
                classes_in.setdefault(path, []).append(name)
        # Same fixed point as models() itself, but loose: a superset of the real models.
        candidates = set(KNOWN_MODEL_BASES)
        changed = True
        while changed:
            changed = False
            for name, bases in bases_of.items():
                if name not in candidates and bases & candidates:
                    candidates.add(name)
                    changed = True
        return [
            path
            for path, names in classes_in.items()
            if any(bases_of[name] & candidates for name in names)
        ]

    def _is_model_base(
        self, path: str, node: ast.ClassDef, bases: set[str], model_names: set[str]
    ) -> bool:
        if bases & model_names:
            return True
        for base in node.bases:
            dotted = _dotted(base) or ""
            last = dotted.rsplit(".", 1)[-1]
            if dotted in ("models.Model", "django.db.models.Model"):
                return True
            if last in KNOWN_MODEL_BASES and last != "Model":
                return True
            if dotted == "Model":
                imported = self.imports_of(path).names.get("Model")
                if imported and imported[0].startswith("django.db"):
                    return True
        return False

    # -- urls

    def url_patterns(self, settings: list[SettingsModule]) -> list[UrlPattern]:
        raw: dict[str, list[tuple[ast.Call, str | None]]] = {}
        for path, tree in self.trees_containing(b"urlpatterns"):
            entries = _urlpatterns_entries(tree)
            if entries is not None:
                raw[path] = entries
        included: set[str] = set()
        for path, entries in raw.items():
            for call, _ in entries:
                target = self._include_target(path, call)
                if target is not None:
                    included.add(target)
        roots = [
            resolved
            for module in settings
            if module.root_urlconf and (resolved := self.modules.resolve(module.root_urlconf))
        ]
        roots += sorted(path for path in raw if path not in included and path not in roots)
        patterns: list[UrlPattern] = []
        visited: set[tuple[str, str]] = set()
        for root in roots:
            self._walk_urlconf(root, "", None, raw, patterns, visited)
        return patterns

    def _walk_urlconf(
        self,
        path: str,
        prefix: str,
        namespace: str | None,
        raw: dict[str, list[tuple[ast.Call, str | None]]],
        patterns: list[UrlPattern],
        visited: set[tuple[str, str]],
    ) -> None:
        if (path, prefix) in visited or path not in raw:
            return
        visited.add((path, prefix))
        tree = self.tree(path)
        app_name = _module_string(tree, "app_name") if tree else None
        for call, _ in raw[path]:
            self._read_url_call(path, call, prefix, namespace or app_name, raw, patterns, visited)

    def _read_url_call(
        self,
        path: str,
        call: ast.Call,
        prefix: str,
        namespace: str | None,
        raw: dict[str, list[tuple[ast.Call, str | None]]],
        patterns: list[UrlPattern],
        visited: set[tuple[str, str]],
    ) -> None:
        kind = _URL_FUNCTIONS.get(_call_name(call) or "")
        if kind is None or not call.args:
            return
        route = _string(call.args[0])
        full_route = _join_routes(prefix, route) if route is not None else None
        name = _string(_keyword(call, "name"))
        if name is None and len(call.args) >= 4:
            name = _string(call.args[3])
        view_node = call.args[1] if len(call.args) > 1 else _keyword(call, "view")
        module = self.modules.module_of[path]
        if isinstance(view_node, ast.Call) and _call_name(view_node) == "include":
            include_module, include_namespace, inline = self._include_parts(path, view_node)
            patterns.append(
                UrlPattern(
                    path=path,
                    module=module,
                    line=call.lineno,
                    kind=kind,
                    route=route,
                    full_route=full_route,
                    name=name,
                    namespace=namespace,
                    view=None,
                    include=include_module,
                )
            )
            child_namespace = include_namespace or namespace
            if inline is not None:
                for item in inline:
                    if isinstance(item, ast.Call):
                        self._read_url_call(
                            path,
                            item,
                            full_route or prefix,
                            child_namespace,
                            raw,
                            patterns,
                            visited,
                        )
            elif include_module is not None:
                target = self.modules.resolve(include_module)
                if target is not None:
                    self._walk_urlconf(
                        target, full_route or prefix, include_namespace, raw, patterns, visited
                    )
            return
        patterns.append(
            UrlPattern(
                path=path,
                module=module,
                line=call.lineno,
                kind=kind,
                route=route,
                full_route=full_route,
                name=name,
                namespace=namespace,
                view=self._view_reference(path, view_node) if view_node is not None else None,
                include=None,
            )
        )

    def _include_parts(
        self, path: str, call: ast.Call
    ) -> tuple[str | None, str | None, list[ast.expr] | None]:
        """Module, namespace and inline patterns of an ``include(...)``."""
        namespace = _string(_keyword(call, "namespace"))
        if not call.args:
            return None, namespace, None
        argument = call.args[0]
        if isinstance(argument, ast.Tuple) and argument.elts:
            # include(("polls.urls", "polls")) names the app namespace second.
            if len(argument.elts) > 1:
                namespace = namespace or _string(argument.elts[1])
            argument = argument.elts[0]
        if isinstance(argument, ast.List):
            return None, namespace, list(argument.elts)
        text = _string(argument)
        if text is not None:
            return text, namespace, None
        dotted = _dotted(argument)
        if dotted is not None:
            return self._module_for_expression(path, dotted), namespace, None
        return None, namespace, None

    def _include_target(self, path: str, call: ast.Call) -> str | None:
        view_node = call.args[1] if len(call.args) > 1 else None
        if isinstance(view_node, ast.Call) and _call_name(view_node) == "include":
            module, _, _ = self._include_parts(path, view_node)
            return self.modules.resolve(module) if module else None
        return None

    def _module_for_expression(self, path: str, dotted: str) -> str:
        """Absolute module for ``views`` / ``polls.urls`` written in ``path``."""
        head, _, rest = dotted.partition(".")
        imports = self.imports_of(path)
        if head in imports.names:
            base, name = imports.names[head]
            head_module = f"{base}.{name}" if base else name
        elif head in imports.modules:
            head_module = imports.modules[head]
        else:
            head_module = head
        return f"{head_module}.{rest}" if rest else head_module

    def _view_reference(self, path: str, node: ast.expr) -> ViewReference:
        expression = ast.unparse(node)
        template_names: tuple[str, ...] = ()
        is_class = False
        if isinstance(node, ast.Call):
            # SomeView.as_view(template_name="x.html")
            template_names = _strings(_keyword(node, "template_name"))
            if isinstance(node.func, ast.Attribute) and node.func.attr == "as_view":
                is_class = True
                node = node.func.value
        string_view = _string(node)
        dotted = string_view or _dotted(node)
        if dotted is None:
            return ViewReference(expression, None, None, None, None, is_class, template_names)
        if string_view is not None:
            module, _, symbol = string_view.rpartition(".")
        else:
            module, symbol = self._symbol_location(path, dotted)
        view_path = self.modules.resolve(module) if module else None
        line = None
        if view_path is not None:
            definition = _top_level_definition(self.tree(view_path), symbol)
            if definition is not None:
                line = definition.lineno
                is_class = is_class or isinstance(definition, ast.ClassDef)
            elif module != self.modules.module_of.get(view_path):
                view_path = None
        return ViewReference(expression, module, symbol, view_path, line, is_class, template_names)

    def _symbol_location(self, path: str, dotted: str) -> tuple[str, str]:
        """(module, symbol) a dotted expression in ``path`` refers to."""
        head, _, rest = dotted.rpartition(".")
        if not head:
            imports = self.imports_of(path)
            if dotted in imports.names:
                return imports.names[dotted]
            return self.modules.module_of[path], dotted
        return self._module_for_expression(path, head), rest

    # -- views and templates

    def views(self, patterns: list[UrlPattern]) -> list[DjangoView]:
        wanted: set[tuple[str, str]] = set()
        for pattern in patterns:
            view = pattern.view
            if view is not None and view.path is not None and view.symbol is not None:
                wanted.add((view.path, view.symbol))
        # Class-based views are views even when no URL names them yet (a mixin's subclass).
        for path in self.python_paths:
            if PurePosixPath(path).name != "views.py" and "/views/" not in f"/{path}":
                continue
            tree = self.tree(path)
            for node in tree.body if tree else ():
                if isinstance(node, ast.ClassDef) and any(
                    base.endswith(_VIEW_BASE_HINTS) for base in _base_names(node)
                ):
                    wanted.add((path, node.name))
        views: list[DjangoView] = []
        for path, symbol in sorted(wanted):
            definition = _top_level_definition(self.tree(path), symbol)
            if definition is None:
                continue
            views.append(
                DjangoView(
                    name=symbol,
                    path=path,
                    line=definition.lineno,
                    kind="class" if isinstance(definition, ast.ClassDef) else "function",
                    bases=tuple(sorted(_base_names(definition)))
                    if isinstance(definition, ast.ClassDef)
                    else (),
                    template_names=self._templates_of(path, definition),
                )
            )
        return views

    def _templates_of(self, path: str, definition: ast.AST, depth: int = 0) -> tuple[str, ...]:
        names: list[str] = []
        if isinstance(definition, ast.ClassDef):
            attributes = _class_values(definition)
            names.extend(_strings(attributes.get("template_name")))
            if not names and depth < 5:
                # Inherit template_name from a project base class, as Python would.
                for base in definition.bases:
                    dotted = _dotted(base)
                    if dotted is None:
                        continue
                    module, symbol = self._symbol_location(path, dotted)
                    base_path = self.modules.resolve(module)
                    base_definition = _top_level_definition(self.tree(base_path), symbol)
                    if base_path is not None and base_definition is not None:
                        names.extend(self._templates_of(base_path, base_definition, depth + 1))
            if not names:
                names.extend(self._default_generic_template(path, definition, attributes))
        for node in ast.walk(definition):
            if isinstance(node, ast.Call) and _call_name(node) in _TEMPLATE_CALLS:
                names.extend(_strings(_keyword(node, "template_name")))
                for argument in node.args[:2]:
                    names.extend(name for name in _strings(argument) if _looks_like_template(name))
        return tuple(dict.fromkeys(names))

    def _default_generic_template(
        self, path: str, definition: ast.ClassDef, attributes: dict[str, ast.expr]
    ) -> list[str]:
        """``polls/question_list.html`` for a ListView with ``model = Question``."""
        model = attributes.get("model")
        model_name = _dotted(model) if model is not None else None
        if model_name is None:
            return []
        suffix = next(
            (
                _GENERIC_VIEW_TEMPLATE_SUFFIX[base]
                for base in sorted(_base_names(definition))
                if base in _GENERIC_VIEW_TEMPLATE_SUFFIX
            ),
            None,
        )
        if suffix is None:
            return []
        model_module, symbol = self._symbol_location(path, model_name)
        model_path = self.modules.resolve(model_module)
        app_dir = PurePosixPath(model_path or path).parent
        if app_dir.name == "models":
            app_dir = app_dir.parent
        return [f"{app_dir.name}/{symbol.lower()}{suffix}.html"]

    def templates(self) -> dict[str, tuple[str, ...]]:
        names: dict[str, list[str]] = {}
        for path in sorted(self.files):
            parts = PurePosixPath(path).parts
            if _TEMPLATE_DIR not in parts[:-1]:
                continue
            # Name relative to the last "templates" folder, as Django's loaders see it.
            index = len(parts) - 1 - parts[::-1].index(_TEMPLATE_DIR)
            names.setdefault("/".join(parts[index + 1 :]), []).append(path)
        return {name: tuple(paths) for name, paths in names.items()}


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name):
            return target.id, node.value
    if isinstance(node, ast.AugAssign | ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def _module_string(tree: ast.Module, name: str) -> str | None:
    for node in tree.body:
        target, value = _assignment(node)
        if target == name:
            return _string(value)
    return None


def _urlpatterns_entries(tree: ast.Module) -> list[tuple[ast.Call, str | None]] | None:
    """The calls listed in ``urlpatterns = [...]`` (and ``+= [...]``, ``i18n_patterns(...)``)."""
    entries: list[tuple[ast.Call, str | None]] | None = None
    for node in tree.body:
        target, value = _assignment(node)
        if target != "urlpatterns" or value is None:
            continue
        entries = entries or []
        for expression in _pattern_lists(value):
            if isinstance(expression, ast.Call):
                entries.append((expression, None))
    return entries


def _pattern_lists(value: ast.expr) -> list[ast.expr]:
    if isinstance(value, ast.List | ast.Tuple):
        return list(value.elts)
    if isinstance(value, ast.BinOp):
        return _pattern_lists(value.left) + _pattern_lists(value.right)
    if isinstance(value, ast.Call) and _call_name(value) in _PATTERN_WRAPPERS:
        items: list[ast.expr] = []
        for argument in value.args:
            items.extend(_pattern_lists(argument) if isinstance(argument, ast.List) else [argument])
        return items
    return []


def _join_routes(prefix: str, route: str) -> str:
    if not prefix:
        return route
    # re_path prefixes end their own match; a child's "^" would anchor mid-string.
    return prefix.removesuffix("$") + route.removeprefix("^")


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        dotted = _dotted(base)
        if dotted is not None:
            names.add(dotted.rsplit(".", 1)[-1])
    return names


def _class_values(node: ast.ClassDef) -> dict[str, ast.expr]:
    values: dict[str, ast.expr] = {}
    for statement in node.body:
        target, value = _assignment(statement)
        if target is not None and value is not None:
            values[target] = value
    return values


def _class_strings(node: ast.ClassDef) -> dict[str, str]:
    return {name: text for name, value in _class_values(node).items() if (text := _string(value))}


def _top_level_definition(
    tree: ast.Module | None, symbol: str | None
) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None:
    if tree is None or symbol is None:
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == symbol
        ):
            return node
    return None


def _is_abstract(node: ast.ClassDef) -> bool:
    for statement in node.body:
        if isinstance(statement, ast.ClassDef) and statement.name == "Meta":
            value = _class_values(statement).get("abstract")
            return isinstance(value, ast.Constant) and value.value is True
    return False


def _model_fields(node: ast.ClassDef) -> tuple[ModelField, ...]:
    fields: list[ModelField] = []
    for statement in node.body:
        target, value = _assignment(statement)
        if target is None or not isinstance(value, ast.Call):
            continue
        field_type = _call_name(value)
        if field_type is None or not (
            field_type.endswith("Field") or field_type in ("ForeignKey", "OneToOneField")
        ):
            continue
        related: str | None = None
        if field_type in ("ForeignKey", "OneToOneField", "ManyToManyField") and value.args:
            related = _string(value.args[0]) or _dotted(value.args[0])
        fields.append(ModelField(target, field_type, statement.lineno, related))
    return tuple(fields)


def _app_label_for(path: str, apps: list[DjangoApp]) -> str | None:
    best: DjangoApp | None = None
    for app in apps:
        if (path.startswith(app.directory + "/") or app.directory == ".") and (
            best is None or len(app.directory) > len(best.directory)
        ):
            best = app
    return best.label if best else None


def _looks_like_template(name: str) -> bool:
    return "." in name.rsplit("/", 1)[-1] and " " not in name


def is_django_project(files: Mapping[str, bytes]) -> bool:
    """Whether the files look like a Django project: manage.py, settings, or URLconfs."""
    for path, data in files.items():
        name = PurePosixPath(path).name
        if name == "manage.py" and b"django" in data.lower():
            return True
        if name.endswith(".py") and (b"INSTALLED_APPS" in data or b"urlpatterns" in data):
            return True
    return False


def analyze(files: Mapping[str, bytes]) -> DjangoProject:
    """Read settings, apps, models, URLs, views and templates, and link URL → view → template."""
    if not is_django_project(files):
        return DjangoProject(detected=False)
    analysis = _Analysis(files)
    settings = analysis.settings()
    apps = analysis.apps(settings)
    patterns = analysis.url_patterns(settings)
    views = analysis.views(patterns)
    templates = analysis.templates()
    view_templates = {(view.path, view.name): view.template_names for view in views}
    links: list[RouteLink] = []
    for pattern in patterns:
        view = pattern.view
        if view is None:
            continue
        names = tuple(
            dict.fromkeys(view.template_names + view_templates.get((view.path, view.symbol), ()))
        )
        paths = tuple(path for name in names for path in templates.get(name, ()))
        links.append(
            RouteLink(
                route=pattern.full_route,
                url_name=f"{pattern.namespace}:{pattern.name}"
                if pattern.namespace and pattern.name
                else pattern.name,
                urlconf_path=pattern.path,
                line=pattern.line,
                view_path=view.path,
                view_symbol=view.symbol,
                template_names=names,
                template_paths=paths,
            )
        )
    return DjangoProject(
        detected=True,
        manage_py=analysis.manage_py,
        settings=settings,
        apps=apps,
        models=analysis.models(apps),
        url_patterns=patterns,
        views=views,
        templates=templates,
        links=links,
    )
