from __future__ import annotations

import threading
from textwrap import dedent

import pytest

from qweb.lib.codeindex.symbols import SUPPORTED_LANGUAGES, extract


def _definitions(language: str, source: str) -> list[tuple[str, str, int, int, str, str | None]]:
    symbols = extract(f"example.{language}", language, dedent(source).lstrip().encode())
    assert not symbols.has_errors
    return [
        (d.name, d.kind, d.start_line, d.end_line, d.signature, d.parent)
        for d in symbols.definitions
    ]


def _references(language: str, source: str) -> set[str]:
    return extract("example", language, dedent(source).lstrip().encode()).referenced_names()


PYTHON = """
import os
from django.db import models

MAX_SIZE = 10


class Article(models.Model):
    title = models.CharField(max_length=100)

    def publish(self, when: int | None = None) -> bool:
        def helper():
            return 1
        return helper() + os.getpid()


def get_user_model(
    name: str,  # the model's label
) -> type:
    return Article
"""


def test_python_definitions_have_kinds_lines_signatures_and_parents():
    assert _definitions("python", PYTHON) == [
        ("MAX_SIZE", "variable", 4, 4, "MAX_SIZE = 10", None),
        ("Article", "class", 7, 13, "class Article(models.Model):", None),
        (
            "publish",
            "method",
            10,
            13,
            "def publish(self, when: int | None = None) -> bool:",
            "Article",
        ),
        (
            "get_user_model",
            "function",
            16,
            19,
            "def get_user_model(\n    name: str,  # the model's label\n) -> type:",
            None,
        ),
    ]


def test_python_local_functions_are_not_definitions_but_their_uses_are_references():
    symbols = extract("a.py", "python", dedent(PYTHON).lstrip().encode())
    assert "helper" not in symbols.defined_names()
    assert {
        "helper",
        "Article",
        "models",
        "CharField",
        "getpid",
        "os",
    } <= symbols.referenced_names()


def test_python_parameters_and_assignment_targets_are_not_references():
    references = _references("python", PYTHON)
    assert "when" not in references
    assert "max_length" not in references
    assert "self" not in references


def test_python_references_carry_their_line():
    symbols = extract("a.py", "python", dedent(PYTHON).lstrip().encode())
    assert ("getpid", 13) in {(reference.name, reference.line) for reference in symbols.references}


def test_javascript_classes_methods_functions_and_arrow_functions():
    source = """
    import { render } from "./dom";
    export class Widget extends Base {
      constructor(el) { this.el = el; }
      mount(target) { return render(this.el, target); }
    }
    function makeWidget(el) { return new Widget(el); }
    export const fetchItems = async (url) => {
      return fetch(url);
    };
    """
    assert _definitions("javascript", source) == [
        ("Widget", "class", 2, 5, "class Widget extends Base", None),
        ("constructor", "method", 3, 3, "constructor(el)", "Widget"),
        ("mount", "method", 4, 4, "mount(target)", "Widget"),
        ("makeWidget", "function", 6, 6, "function makeWidget(el)", None),
        ("fetchItems", "function", 7, 9, "const fetchItems = async (url) =>", None),
    ]
    assert {"render", "Base", "Widget", "fetch"} <= _references("javascript", source)


def test_typescript_interfaces_types_enums_and_classes():
    source = """
    export interface Repo {
      fetch(id: number): Promise<Item>;
    }
    export type Id = string | number;
    export enum Color { Red, Green }
    export class Client implements Repo {
      async fetch(id: number): Promise<Item> {
        return request<Item>(id);
      }
    }
    """
    assert _definitions("typescript", source) == [
        ("Repo", "interface", 1, 3, "interface Repo", None),
        ("fetch", "method", 2, 2, "fetch(id: number): Promise<Item>", "Repo"),
        ("Id", "type", 4, 4, "type Id = string | number;", None),
        ("Color", "enum", 5, 5, "enum Color", None),
        ("Client", "class", 6, 10, "class Client implements Repo", None),
        ("fetch", "method", 7, 9, "async fetch(id: number): Promise<Item>", "Client"),
    ]
    assert {"Item", "Promise", "Repo", "request"} <= _references("typescript", source)


def test_tsx_components_parse_with_jsx():
    source = """
    interface Props { title: string }
    export function Header({ title }: Props) {
      return <h1 className="t">{title}</h1>;
    }
    export const Footer = (): JSX.Element => <footer />;
    """
    assert _definitions("tsx", source) == [
        ("Props", "interface", 1, 1, "interface Props", None),
        ("Header", "function", 2, 4, "function Header({ title }: Props)", None),
        ("Footer", "function", 5, 5, "const Footer = (): JSX.Element =>", None),
    ]
    assert "Props" in _references("tsx", source)


def test_go_structs_interfaces_functions_and_receiver_methods():
    source = """
    package store

    type Store struct {
        items map[string]int
    }

    type Reader interface {
        Read(key string) (int, error)
    }

    func NewStore() *Store {
        return &Store{items: map[string]int{}}
    }

    func (s *Store) Read(key string) (int, error) {
        return s.items[key], nil
    }
    """
    assert _definitions("go", source) == [
        ("Store", "struct", 3, 5, "type Store struct", None),
        ("Reader", "interface", 7, 9, "type Reader interface", None),
        ("NewStore", "function", 11, 13, "func NewStore() *Store", None),
        ("Read", "method", 15, 17, "func (s *Store) Read(key string) (int, error)", "Store"),
    ]
    assert {"Store", "items"} <= _references("go", source)


def test_rust_structs_traits_impl_methods_and_functions():
    source = """
    pub struct Point {
        x: i32,
    }

    pub trait Shape {
        fn area(&self) -> f64;
    }

    impl<T> fmt::Display for Wrapper<T> {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "{}", self.0)
        }
    }

    pub fn distance(a: &Point, b: &Point) -> f64 {
        0.0
    }
    """
    assert _definitions("rust", source) == [
        ("Point", "struct", 1, 3, "pub struct Point", None),
        ("Shape", "trait", 5, 7, "pub trait Shape", None),
        ("area", "method", 6, 6, "fn area(&self) -> f64;", "Shape"),
        (
            "fmt",
            "method",
            10,
            12,
            "fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result",
            "Wrapper",
        ),
        ("distance", "function", 15, 17, "pub fn distance(a: &Point, b: &Point) -> f64", None),
    ]
    assert {"Point", "Formatter", "write"} <= _references("rust", source)


def test_java_classes_constructors_methods_and_interfaces():
    source = """
    public class Greeter implements Speaker {
        public Greeter(String name) {
            this.name = name;
        }

        public String greet(Person person) {
            return format(person.getName());
        }
    }

    interface Speaker {
        String greet(Person person);
    }
    """
    assert _definitions("java", source) == [
        ("Greeter", "class", 1, 9, "public class Greeter implements Speaker", None),
        ("Greeter", "method", 2, 4, "public Greeter(String name)", "Greeter"),
        ("greet", "method", 6, 8, "public String greet(Person person)", "Greeter"),
        ("Speaker", "interface", 11, 13, "interface Speaker", None),
        ("greet", "method", 12, 12, "String greet(Person person);", "Speaker"),
    ]
    assert {"Person", "Speaker", "getName", "format"} <= _references("java", source)


def test_c_functions_structs_typedefs_macros_and_prototypes():
    source = """
    #define MAX(a, b) ((a) > (b) ? (a) : (b))

    struct point {
        int x;
    };

    typedef struct point point_t;

    static int add(int a, int b) {
        return MAX(a, b);
    }

    char *name_of(struct point *p);
    """
    assert _definitions("c", source) == [
        ("MAX", "macro", 1, 2, "#define MAX(a, b) ((a) > (b) ? (a) : (b))", None),
        ("point", "struct", 3, 5, "struct point", None),
        ("point_t", "type", 7, 7, "typedef struct point point_t;", None),
        ("add", "function", 9, 11, "static int add(int a, int b)", None),
        ("name_of", "function", 13, 13, "char *name_of(struct point *p);", None),
    ]
    assert "MAX" in _references("c", source)


def test_cpp_namespaces_classes_and_out_of_class_method_definitions():
    source = """
    namespace geo {
    class Shape {
    public:
        virtual double area() const;
    };

    double Shape::area() const {
        return compute(0.0);
    }
    }
    """
    assert _definitions("cpp", source) == [
        ("geo", "namespace", 1, 10, "namespace geo", None),
        ("Shape", "class", 2, 5, "class Shape", "geo"),
        ("area", "method", 4, 4, "virtual double area() const;", "Shape"),
        ("area", "method", 7, 9, "double Shape::area() const", "Shape"),
    ]
    assert {"compute", "Shape"} <= _references("cpp", source)


def test_ruby_modules_classes_and_methods():
    source = """
    module Billing
      class Invoice < ApplicationRecord
        def total(tax)
          line_items.sum(&:amount) + tax
        end

        def self.overdue
          where(paid: false)
        end
      end
    end

    def helper(x)
      x
    end
    """
    assert _definitions("ruby", source) == [
        ("Billing", "module", 1, 11, "module Billing", None),
        ("Invoice", "class", 2, 10, "class Invoice < ApplicationRecord", "Billing"),
        ("total", "method", 3, 5, "def total(tax)", "Invoice"),
        ("overdue", "method", 7, 9, "def self.overdue", "Invoice"),
        ("helper", "function", 13, 15, "def helper(x)", None),
    ]
    assert {"ApplicationRecord", "line_items", "where"} <= _references("ruby", source)


def test_php_namespaces_interfaces_classes_methods_and_functions():
    source = """
    <?php
    namespace App\\Models;

    interface HasName {
        public function name(): string;
    }

    class User extends Model implements HasName {
        public function name(): string {
            return strtoupper($this->first);
        }
    }

    function make_user(array $attrs): User {
        return new User($attrs);
    }
    """
    assert _definitions("php", source) == [
        ("App\\Models", "module", 2, 2, "namespace App\\Models;", None),
        ("HasName", "interface", 4, 6, "interface HasName", None),
        ("name", "method", 5, 5, "public function name(): string;", "HasName"),
        ("User", "class", 8, 12, "class User extends Model implements HasName", None),
        ("name", "method", 9, 11, "public function name(): string", "User"),
        ("make_user", "function", 14, 16, "function make_user(array $attrs): User", None),
    ]
    assert {"Model", "HasName", "User", "strtoupper"} <= _references("php", source)


def test_an_unknown_language_yields_no_symbols():
    symbols = extract("README.md", "markdown", b"# Title\n")
    assert symbols.definitions == []
    assert symbols.references == []


def test_broken_source_still_yields_what_parses_and_says_it_had_errors():
    symbols = extract("a.py", "python", b"def ok():\n    return 1\n\ndef broken(:\n")
    assert symbols.has_errors
    assert "ok" in symbols.defined_names()


def test_the_same_blob_always_yields_the_same_rows():
    source = dedent(PYTHON).encode()
    assert extract("a.py", "python", source) == extract("a.py", "python", source)


@pytest.mark.parametrize("language", sorted(SUPPORTED_LANGUAGES))
def test_every_supported_language_parses_an_empty_file(language):
    assert extract("empty", language, b"").definitions == []


def test_extraction_is_safe_from_several_threads():
    source = dedent(PYTHON).encode()
    expected = extract("a.py", "python", source)
    results: list[bool] = []

    def work() -> None:
        results.extend(extract("a.py", "python", source) == expected for _ in range(20))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 80
