"""Definitions and references of a source file, extracted with tree-sitter queries."""

from __future__ import annotations

import importlib
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from tree_sitter import Language, Node, Parser, Query, QueryCursor

# Definition kinds whose nested functions are methods. A Rust ``mod`` or C++ ``namespace``
# holds plain functions; a Ruby ``module`` holds methods (mixins), so Ruby adds "module".
CONTAINER_KINDS = frozenset({"class", "struct", "interface", "trait", "enum", "impl"})
# Definitions nested inside these are local (closures, helpers, test-local classes): nobody
# outside can name them, so they would only crowd the repository map and symbol search.
_LOCAL_SCOPE_KINDS = frozenset({"function", "method"})

_MAX_SIGNATURE_LINES = 8
_COMMENT_LINE = re.compile(r"\s*(?:#(?![\[!])|//|/\*|\*(?:\s|/|$))")
_MAX_SIGNATURE_CHARS = 400


@dataclass(frozen=True, slots=True)
class Definition:
    """A named definition: where it is, what it is, and how it is declared."""

    name: str
    kind: str
    start_line: int
    end_line: int
    signature: str
    parent: str | None = None

    @property
    def qualified_name(self) -> str:
        """Name with its enclosing class/module, e.g. ``Model.save``."""
        return f"{self.parent}.{self.name}" if self.parent else self.name


class Reference(NamedTuple):
    """An identifier used (not defined) on a line; a plain tuple because files hold thousands."""

    name: str
    line: int


@dataclass(slots=True)
class FileSymbols:
    """Everything the index keeps about the symbols of one file."""

    path: str
    language: str
    definitions: list[Definition] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    has_errors: bool = False

    def defined_names(self) -> set[str]:
        """Names this file defines."""
        return {definition.name for definition in self.definitions}

    def referenced_names(self) -> set[str]:
        """Names this file uses."""
        return {reference.name for reference in self.references}


@dataclass(frozen=True, slots=True)
class _LanguageSpec:
    """How to parse one language: where its grammar lives and its tag query."""

    module: str
    function: str
    # Patterns capture the definition node as ``@definition.<kind>`` and its name as ``@name``;
    # ``@scope.<kind>`` marks a container that is not itself listed (a Rust ``impl`` block).
    definitions: str
    # ``@reference`` captures identifier uses; definition names and ``@binding`` captures
    # (parameters, assignment targets) are removed afterwards by position.
    references: str
    # Identifiers that are language furniture, never a link between files.
    ignored: frozenset[str] = frozenset()
    # A declaration wrapping a single definition (``const f = () => {}``, Go ``type X struct``)
    # starts the signature, so it reads as written.
    wrappers: frozenset[str] = frozenset()
    # Nodes holding a definition's body when the grammar has no ``body`` field for it.
    bodies: frozenset[str] = frozenset()
    method_containers: frozenset[str] = CONTAINER_KINDS


_PYTHON = _LanguageSpec(
    "tree_sitter_python",
    "language",
    definitions="""
    (class_definition name: (identifier) @name) @definition.class
    (function_definition name: (identifier) @name) @definition.function
    (module (expression_statement (assignment left: (identifier) @name) @definition.variable))
    """,
    # Parameters, keyword-argument names and local assignment targets bind names rather than
    # use them; counting them would tie every file with a ``value`` parameter to every
    # ``value`` method in the repository.
    references="""
    (identifier) @reference
    (parameters (identifier) @binding)
    (default_parameter name: (identifier) @binding)
    (typed_parameter (identifier) @binding)
    (typed_default_parameter name: (identifier) @binding)
    (lambda_parameters (identifier) @binding)
    (keyword_argument name: (identifier) @binding)
    (assignment left: (identifier) @binding)
    (for_statement left: (identifier) @binding)
    """,
    ignored=frozenset({"self", "cls", "super", "print", "len", "str", "int", "isinstance"}),
)

_JAVASCRIPT_DEFINITIONS = """
(class_declaration name: (_) @name) @definition.class
(class name: (_) @name) @definition.class
(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(method_definition name: (_) @name) @definition.method
(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function
(assignment_expression
  left: (member_expression property: (property_identifier) @name)
  right: [(arrow_function) (function_expression)]) @definition.function
"""
_TYPESCRIPT_DEFINITIONS = (
    _JAVASCRIPT_DEFINITIONS
    + """
(abstract_class_declaration name: (_) @name) @definition.class
(interface_declaration name: (_) @name) @definition.interface
(type_alias_declaration name: (_) @name) @definition.type
(enum_declaration name: (_) @name) @definition.enum
(internal_module name: (_) @name) @definition.module
(function_signature name: (identifier) @name) @definition.function
(method_signature name: (_) @name) @definition.method
(abstract_method_signature name: (_) @name) @definition.method
"""
)
_JS_IGNORED = frozenset({"this", "super", "undefined", "require", "console", "module", "exports"})
_JS_WRAPPERS = frozenset({"lexical_declaration", "variable_declaration"})

_JAVASCRIPT = _LanguageSpec(
    "tree_sitter_javascript",
    "language",
    definitions=_JAVASCRIPT_DEFINITIONS,
    references="""
    [(identifier) (property_identifier) (shorthand_property_identifier)] @reference
    """,
    ignored=_JS_IGNORED,
    wrappers=_JS_WRAPPERS,
)
_TS_REFERENCES = """
[(identifier) (property_identifier) (shorthand_property_identifier) (type_identifier)] @reference
"""
_TYPESCRIPT = _LanguageSpec(
    "tree_sitter_typescript",
    "language_typescript",
    definitions=_TYPESCRIPT_DEFINITIONS,
    references=_TS_REFERENCES,
    ignored=_JS_IGNORED,
    wrappers=_JS_WRAPPERS,
)
_TSX = _LanguageSpec(
    "tree_sitter_typescript",
    "language_tsx",
    definitions=_TYPESCRIPT_DEFINITIONS,
    references=_TS_REFERENCES,
    ignored=_JS_IGNORED,
    wrappers=_JS_WRAPPERS,
)

_GO = _LanguageSpec(
    "tree_sitter_go",
    "language",
    definitions="""
    (function_declaration name: (identifier) @name) @definition.function
    (method_declaration name: (field_identifier) @name) @definition.method
    (type_spec name: (type_identifier) @name type: (struct_type)) @definition.struct
    (type_spec name: (type_identifier) @name type: (interface_type)) @definition.interface
    (type_spec name: (type_identifier) @name
      type: [(type_identifier) (qualified_type) (generic_type) (function_type) (map_type)
             (slice_type) (array_type) (pointer_type) (channel_type)]) @definition.type
    (type_alias name: (type_identifier) @name) @definition.type
    (source_file (const_declaration (const_spec name: (identifier) @name) @definition.constant))
    (source_file (var_declaration (var_spec name: (identifier) @name) @definition.variable))
    """,
    references="""
    [(identifier) (type_identifier) (field_identifier) (package_identifier)] @reference
    """,
    ignored=frozenset({"err", "nil", "ok", "_"}),
    wrappers=frozenset({"type_declaration", "const_declaration", "var_declaration"}),
    bodies=frozenset({"field_declaration_list"}),
)

_RUST = _LanguageSpec(
    "tree_sitter_rust",
    "language",
    definitions="""
    (struct_item name: (type_identifier) @name) @definition.struct
    (union_item name: (type_identifier) @name) @definition.struct
    (enum_item name: (type_identifier) @name) @definition.enum
    (type_item name: (type_identifier) @name) @definition.type
    (trait_item name: (type_identifier) @name) @definition.trait
    (function_item name: (identifier) @name) @definition.function
    (function_signature_item name: (identifier) @name) @definition.function
    (mod_item name: (identifier) @name) @definition.module
    (macro_definition name: (identifier) @name) @definition.macro
    (const_item name: (identifier) @name) @definition.constant
    (static_item name: (identifier) @name) @definition.constant
    (impl_item type: (_) @name) @scope.impl
    """,
    references="[(identifier) (type_identifier) (field_identifier)] @reference",
    ignored=frozenset({"self", "Self", "Ok", "Err", "Some", "None"}),
)

_JAVA = _LanguageSpec(
    "tree_sitter_java",
    "language",
    definitions="""
    (class_declaration name: (identifier) @name) @definition.class
    (record_declaration name: (identifier) @name) @definition.class
    (interface_declaration name: (identifier) @name) @definition.interface
    (annotation_type_declaration name: (identifier) @name) @definition.interface
    (enum_declaration name: (identifier) @name) @definition.enum
    (method_declaration name: (identifier) @name) @definition.method
    (constructor_declaration name: (identifier) @name) @definition.method
    """,
    references="[(identifier) (type_identifier)] @reference",
    ignored=frozenset({"this", "super", "String", "Override"}),
)

_C_DEFINITIONS = """
(function_definition
  declarator: [
    (function_declarator declarator: (_) @name)
    (pointer_declarator declarator: (function_declarator declarator: (_) @name))
    (pointer_declarator declarator: (pointer_declarator
      declarator: (function_declarator declarator: (_) @name)))
  ]) @definition.function
(declaration
  declarator: [
    (function_declarator declarator: (identifier) @name)
    (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))
  ]) @definition.function
(struct_specifier name: (type_identifier) @name body: (_)) @definition.struct
(union_specifier name: (type_identifier) @name body: (_)) @definition.struct
(enum_specifier name: (type_identifier) @name body: (_)) @definition.enum
(type_definition declarator: (type_identifier) @name) @definition.type
(preproc_function_def name: (identifier) @name) @definition.macro
(preproc_def name: (identifier) @name) @definition.macro
"""
_C = _LanguageSpec(
    "tree_sitter_c",
    "language",
    definitions=_C_DEFINITIONS,
    references="[(identifier) (type_identifier) (field_identifier)] @reference",
    ignored=frozenset({"NULL", "size_t"}),
)
_CPP = _LanguageSpec(
    "tree_sitter_cpp",
    "language",
    definitions=_C_DEFINITIONS
    + """
    (class_specifier name: (type_identifier) @name body: (_)) @definition.class
    (struct_specifier name: (template_type name: (type_identifier) @name) body: (_))
      @definition.struct
    (namespace_definition name: (namespace_identifier) @name) @definition.namespace
    (field_declaration
      declarator: (function_declarator declarator: (field_identifier) @name)) @definition.method
    """,
    references="""
    [(identifier) (type_identifier) (field_identifier) (namespace_identifier)] @reference
    """,
    ignored=frozenset({"NULL", "nullptr", "std", "size_t", "this"}),
)

_RUBY = _LanguageSpec(
    "tree_sitter_ruby",
    "language",
    definitions="""
    (class name: [(constant) @name (scope_resolution name: (_) @name)]) @definition.class
    (module name: [(constant) @name (scope_resolution name: (_) @name)]) @definition.module
    (method name: (_) @name) @definition.function
    (singleton_method name: (_) @name) @definition.method
    """,
    references="[(identifier) (constant)] @reference",
    ignored=frozenset({"self", "super", "require", "require_relative", "attr_accessor", "puts"}),
    method_containers=CONTAINER_KINDS | {"module"},
)

_PHP = _LanguageSpec(
    "tree_sitter_php",
    "language_php",
    definitions="""
    (namespace_definition name: (namespace_name) @name) @definition.module
    (class_declaration name: (name) @name) @definition.class
    (interface_declaration name: (name) @name) @definition.interface
    (trait_declaration name: (name) @name) @definition.trait
    (enum_declaration name: (name) @name) @definition.enum
    (function_definition name: (name) @name) @definition.function
    (method_declaration name: (name) @name) @definition.method
    """,
    references="(name) @reference",
    ignored=frozenset({"this", "self", "parent", "static", "array", "string", "int"}),
)

_SPECS: dict[str, _LanguageSpec] = {
    "python": _PYTHON,
    "javascript": _JAVASCRIPT,
    "typescript": _TYPESCRIPT,
    "tsx": _TSX,
    "go": _GO,
    "rust": _RUST,
    "java": _JAVA,
    "c": _C,
    "cpp": _CPP,
    "ruby": _RUBY,
    "php": _PHP,
}
SUPPORTED_LANGUAGES = frozenset(_SPECS)


@dataclass(frozen=True, slots=True)
class _Compiled:
    language: Language
    definitions: Query
    references: Query


# Grammars and compiled queries are immutable once built, so one copy serves every thread;
# the lock only keeps two threads from compiling the same language twice.
_compiled: dict[str, _Compiled] = {}
_compile_lock = threading.Lock()
# A Parser carries per-parse state, so each thread keeps its own.
_thread_state = threading.local()


def _compiled_for(language: str) -> _Compiled:
    compiled = _compiled.get(language)
    if compiled is not None:
        return compiled
    with _compile_lock:
        compiled = _compiled.get(language)
        if compiled is None:
            spec = _SPECS[language]
            grammar: Callable[[], object] = getattr(
                importlib.import_module(spec.module), spec.function
            )
            ts_language = Language(grammar())
            compiled = _Compiled(
                language=ts_language,
                definitions=Query(ts_language, spec.definitions),
                references=Query(ts_language, spec.references),
            )
            _compiled[language] = compiled
    return compiled


def _parser_for(language: str) -> Parser:
    parsers: dict[str, Parser] | None = getattr(_thread_state, "parsers", None)
    if parsers is None:
        parsers = _thread_state.parsers = {}
    parser = parsers.get(language)
    if parser is None:
        parser = parsers[language] = Parser(_compiled_for(language).language)
    return parser


@dataclass(slots=True)
class _Found:
    """A definition or scope match before nesting is resolved."""

    node: Node
    name_node: Node
    kind: str
    listed: bool  # False for scopes (Rust ``impl``) that only name their members' parent


def extract(path: str, language: str, source: bytes) -> FileSymbols:
    """Parse one file and return its definitions and references (empty for unknown languages)."""
    if language not in _SPECS:
        return FileSymbols(path=path, language=language)
    spec = _SPECS[language]
    compiled = _compiled_for(language)
    tree = _parser_for(language).parse(source)
    root = tree.root_node

    found = _find_definitions(compiled.definitions, root)
    definitions = _resolve_definitions(found, source, spec)
    name_starts = {item.name_node.start_byte for item in found}
    references = _collect_references(compiled.references, root, source, spec, name_starts)
    return FileSymbols(
        path=path,
        language=language,
        definitions=definitions,
        references=references,
        has_errors=root.has_error,
    )


def _find_definitions(query: Query, root: Node) -> list[_Found]:
    # Several patterns could match one name node; the earliest pattern in the query wins, so
    # the result never depends on the order matches come back in.
    by_name: dict[int, tuple[int, _Found]] = {}
    for pattern, captures in QueryCursor(query).matches(root):
        name_nodes = captures.get("name")
        if not name_nodes:
            continue
        name_node = name_nodes[0]
        # C++ ``void Shape::area()`` names ``area``; the scope becomes the parent.
        while name_node.type in ("qualified_identifier", "scoped_identifier"):
            inner = name_node.child_by_field_name("name")
            if inner is None:
                break
            name_node = inner
        for capture, nodes in captures.items():
            if capture == "name":
                continue
            role, _, kind = capture.partition(".")
            known = by_name.get(name_node.start_byte)
            if known is None or pattern < known[0]:
                found = _Found(
                    node=nodes[0], name_node=name_node, kind=kind, listed=role == "definition"
                )
                by_name[name_node.start_byte] = (pattern, found)
    # Outer definitions first, so nesting can be resolved with a stack.
    return sorted(
        (found for _, found in by_name.values()),
        key=lambda item: (item.node.start_byte, -item.node.end_byte),
    )


def _resolve_definitions(
    found: list[_Found], source: bytes, spec: _LanguageSpec
) -> list[Definition]:
    definitions: list[Definition] = []
    # (end_byte, kind, name) of the definitions enclosing the current one.
    stack: list[tuple[int, str, str]] = []
    for item in found:
        node = item.node
        while stack and stack[-1][0] <= node.start_byte:
            stack.pop()
        enclosing = stack[-1] if stack else None
        name = _name_text(item, source)
        stack.append((node.end_byte, item.kind, name))
        if enclosing is not None and enclosing[1] in _LOCAL_SCOPE_KINDS:
            continue
        if not item.listed:
            continue
        kind = item.kind
        outside_parent = _outside_parent(item, source)
        in_container = enclosing is not None and enclosing[1] in spec.method_containers
        if kind == "function" and (in_container or outside_parent is not None):
            kind = "method"
        parent = outside_parent or (enclosing[2] if enclosing is not None else None)
        definitions.append(
            Definition(
                name=name,
                kind=kind,
                start_line=node.start_point[0] + 1,
                end_line=node.end_point[0] + 1,
                signature=_signature(node, source, spec),
                parent=parent,
            )
        )
    return definitions


def _name_text(item: _Found, source: bytes) -> str:
    name = _text(item.name_node, source)
    if item.kind == "impl":
        # ``impl<T> Display for Wrapper<T>`` names its members' parent "Wrapper".
        name = name.split("<", 1)[0].rsplit("::", 1)[-1].strip()
    return sys.intern(name)


def _outside_parent(item: _Found, source: bytes) -> str | None:
    """Parent named outside the body: a Go receiver, a C++ ``Class::method`` definition."""
    node = item.node
    if node.type == "method_declaration" and node.child_by_field_name("receiver") is not None:
        receiver = node.child_by_field_name("receiver")
        for type_node in _descendants_of_type(receiver, "type_identifier"):
            return sys.intern(_text(type_node, source))
    name_parent = item.name_node.parent
    if name_parent is not None and name_parent.type == "qualified_identifier":
        scope = name_parent.child_by_field_name("scope")
        if scope is not None:
            return sys.intern(_text(scope, source).split("<", 1)[0])
    return None


def _descendants_of_type(node: Node | None, node_type: str) -> list[Node]:
    if node is None:
        return []
    result: list[Node] = []
    pending = [node]
    while pending:
        current = pending.pop()
        if current.type == node_type:
            result.append(current)
        pending.extend(reversed(current.named_children))
    return result


def _signature(node: Node, source: bytes, spec: _LanguageSpec) -> str:
    """The declaration as written up to its body: ``def f(a: int) -> str:``, ``class A(B):``."""
    start_node = node
    parent = node.parent
    if parent is not None and parent.type in spec.wrappers and parent.named_child_count == 1:
        start_node = parent
    body = _body_of(node, spec)
    if body is not None:
        text = source[start_node.start_byte : body.start_byte].decode("utf-8", "replace")
        lines = text.rstrip().splitlines()[:_MAX_SIGNATURE_LINES]
    else:
        # No body (an assignment, a prototype, an interface member): its first line says enough.
        end = source.find(b"\n", start_node.start_byte, node.end_byte)
        end = node.end_byte if end < 0 else end
        lines = [source[start_node.start_byte : end].decode("utf-8", "replace")]
    indent = start_node.start_point[1]
    lines = [lines[0].rstrip()] + [_dedent(line, indent).rstrip() for line in lines[1:]]
    # Comments between a header and its body (tree-sitter keeps them before the body) are
    # not part of the declaration.
    signature = "\n".join(
        [lines[0]] + [line for line in lines[1:] if line.strip() and not _COMMENT_LINE.match(line)]
    )
    # A body-less header cut at "{" (Go ``type I interface {``); a Python assignment keeps it,
    # since there "{" opens the value (``ROUTES = {``).
    if body is None and "{" in signature and node.type != "assignment":
        signature = signature.split("{", 1)[0].rstrip()
    if len(signature) > _MAX_SIGNATURE_CHARS:
        signature = signature[: _MAX_SIGNATURE_CHARS - 1].rstrip() + "…"
    return signature


def _body_of(node: Node, spec: _LanguageSpec) -> Node | None:
    body = node.child_by_field_name("body")
    if body is not None:
        return body
    value = node.child_by_field_name("value")  # ``const f = () => {…}``
    if value is not None and value.type in ("arrow_function", "function_expression"):
        return value.child_by_field_name("body")
    if spec.bodies:
        # Go: ``type S struct {…}`` keeps its fields under the type, not a ``body`` field.
        type_node = node.child_by_field_name("type")
        if type_node is not None:
            for child in type_node.named_children:
                if child.type in spec.bodies:
                    return child
    return None


def _dedent(line: str, columns: int) -> str:
    stripped = len(line) - len(line.lstrip(" \t"))
    return line[min(stripped, columns) :]


def _text(node: Node, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _collect_references(
    query: Query, root: Node, source: bytes, spec: _LanguageSpec, name_starts: set[int]
) -> list[Reference]:
    seen: set[tuple[str, int]] = set()
    ignored = spec.ignored
    intern = sys.intern
    captures = QueryCursor(query).captures(root)
    bindings = captures.get("binding")
    if bindings:
        name_starts = name_starts | {node.start_byte for node in bindings}
    for node in captures.get("reference", ()):
        start = node.start_byte
        if start in name_starts:
            continue
        name = source[start : node.end_byte].decode("utf-8", "replace")
        if name in ignored or len(name) < 2:
            continue
        seen.add((intern(name), node.start_point[0] + 1))
    # Sorted because the order of captures is not stable between runs, and the same blob
    # must always yield the same rows (the index is keyed by blob sha).
    return [Reference(name, line) for line, name in sorted((line, name) for name, line in seen)]
