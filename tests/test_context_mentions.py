"""``@name`` mentions, the variables a namespace offers, and one request's context from names and objects
(issue 17 item 3's rules, SPEC 10)."""

from __future__ import annotations

import math
import types

import numpy as np
import pandas as pd
import pytest

from jupyter_streamchat.context import (
    ContextError,
    ContextLimits,
    build_context,
    find_mentions,
    list_variables,
    resolve_mentions,
)


@pytest.mark.parametrize(
    ("prompt", "mentions"),
    [
        ("@df why does the plot dip in March?", ["df"]),
        ("compare @df and @sales_2024, then @df again", ["df", "sales_2024"]),
        ("what is in @df? and @df.columns", ["df"]),
        ("mail user@example.com or me@there", []),
        ("(@df) and x@df are not mentions", []),
        ("a tab\t@a, a newline\n@b", ["a", "b"]),
        ("`@df` and ``code with ` and @x`` are code, @y is not", ["y"]),
        ("```python\n@property\ndef f(): ...\n```\n@after", ["after"]),
        ("~~~\n@in_tildes\n~~~~\n@z", ["z"]),
        ("```\nunclosed fence @hidden", []),
        ("an unmatched ` backtick @seen", ["seen"]),
        ("@1abc is no identifier, @_private is, @données too", ["_private", "données"]),
    ],
)
def test_a_mention_is_an_identifier_after_an_at_sign_outside_code(prompt, mentions):
    # When the prompt's mentions are read, Then they are the identifiers after "@" at the start or after
    # whitespace, each once, never inside code spans or fences, never in an email address
    assert find_mentions(prompt) == mentions


def test_a_mention_of_a_variable_adds_it_and_one_of_nothing_stays_text():
    namespace = {"df": pd.DataFrame({"a": [1]}), "fig": object()}
    # When prompts mention variables, and words that name nothing close to a variable
    # Then variables are the context, and "@property" is just part of the question
    assert resolve_mentions("@df and @fig please", namespace) == (["df", "fig"], None)
    assert resolve_mentions("what does @property do?", namespace) == ([], None)
    assert resolve_mentions("ping @here", namespace) == ([], None)


@pytest.mark.parametrize(
    ("prompt", "error"),
    [
        ("@dff why?", "@dff names no variable; did you mean @df?"),
        ("@DF why?", "@DF names no variable; did you mean @df?"),
        ("@df and @sale", "@sale names no variable; did you mean @sales?"),
    ],
)
def test_a_mention_close_to_a_variable_is_a_one_line_error(prompt, error):
    namespace = {"df": 1, "sales": 2}
    # When a mention names nothing but is close to a variable's name
    _, message = resolve_mentions(prompt, namespace)
    # Then the error names it and the close match, on one line
    assert message == error


def test_modules_functions_classes_private_and_ipython_names_are_never_suggested():
    namespace = {
        "dfs": types.ModuleType("dfs"),
        "df_": len,
        "dF": type("dF", (), {}),
        "_df": 1,
        "In": [],
        "Out": {},
        "exit": object(),
        "quit": object(),
        "get_ipython": lambda: None,
    }
    # When a mention is close only to such names, Then it stays text
    assert resolve_mentions("@df", namespace) == ([], None)
    assert resolve_mentions("@Inn @exitt @quitt", namespace) == ([], None)


def test_ipython_history_names_are_not_mentionable_but_a_users_private_name_is():
    namespace = {"_": 1, "_3": 2, "_i": "x", "_ih": [], "__builtins__": {}, "_cache": [1]}
    # When they are mentioned, Then only the user's own private variable is context
    assert resolve_mentions("@_ @_3 @_i @_ih @__builtins__ @_cache", namespace) == (["_cache"], None)


def test_the_variables_list_has_name_type_and_shape_without_calling_a_repr():
    class NoRepr:
        def __repr__(self) -> str:
            raise AssertionError("a repr was called")

    namespace = {
        "df": pd.DataFrame(np.zeros((3, 2))),
        "arr": np.zeros((4, 5, 6)),
        "scalar": np.zeros(()),
        "names": ["a", "b"],
        "text": "hello",
        "thing": NoRepr(),
        "np": np,
        "helper": len,
        "Model": type("Model", (), {}),
        "_hidden": 1,
        "In": [],
        "exit": object(),
        "Bee": 1,
    }
    # When the namespace's variables are listed
    variables = list_variables(namespace)
    # Then they are the data, sorted by name, with their type and shape
    assert variables == [
        {"name": "arr", "type": "numpy.ndarray", "shape": "4 x 5 x 6"},
        {"name": "Bee", "type": "int", "shape": None},
        {"name": "df", "type": "pandas.DataFrame", "shape": "3 x 2"},
        {"name": "names", "type": "list", "shape": "2 items"},
        {"name": "scalar", "type": "numpy.ndarray", "shape": "scalar"},
        {"name": "text", "type": "str", "shape": "5 chars"},
        {"name": "thing", "type": "NoRepr", "shape": None},
    ]
    # And the list is bounded
    assert len(list_variables({f"v{i}": i for i in range(50)}, limit=10)) == 10


def test_a_request_takes_objects_names_and_mentions_each_name_once():
    df = pd.DataFrame({"a": [1.0, math.nan]})
    other = np.arange(3)
    namespace = {"df": df, "other": other, "alias": df}
    # When the context holds an object, a variable's name and plain text, and the prompt mentions variables
    items = build_context([df, "other", "a note, not a name"], "@df and @alias: why?", namespace)
    # Then each name is sent once (the object given directly is named after its variable); text stays text
    assert [(item.kind, item.name) for item in items] == [
        ("dataframe", "df"),
        ("array", "other"),
        ("text", None),
        ("dataframe", "alias"),
    ]
    assert items[2].text == "a note, not a name"


def test_a_name_that_names_nothing_refuses_the_request_with_a_hint():
    namespace = {"df": 1}
    # When the context names a variable that is gone, or the prompt mistypes one
    # Then the request is refused with one line (nothing is built)
    with pytest.raises(ContextError, match=r"^context names 'dff', which is no variable here; did you mean 'df'\?$"):
        build_context(["dff"], "", namespace)
    with pytest.raises(ContextError, match=r"^context names 'gone', which is no variable here$"):
        build_context(["gone"], "", namespace)
    with pytest.raises(ContextError, match=r"^@dff names no variable; did you mean @df\?$"):
        build_context([], "@dff why?", namespace)


def test_a_request_applies_its_limits_to_all_items_together():
    namespace = {f"t{i}": "x" * 900 for i in range(5)}
    limits = ContextLimits(request_chars=2000)
    # When five 900-char strings are mentioned in a 2,000-char request
    items = build_context([], "@t0 @t1 @t2 @t3 @t4", namespace, limits)
    # Then all are there, in order, within the limit, and the cut ones say so
    assert [item.name for item in items] == ["t0", "t1", "t2", "t3", "t4"]
    assert sum(item.chars for item in items) <= 2000
    assert items[-1].text.endswith("(cut: 2,000 chars of context per request reached)")
