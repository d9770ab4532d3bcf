from __future__ import annotations

import pytest

from inference.detok import REPLACEMENT_CHARACTER, IncrementalDetokenizer, StopStringMatcher

MULTI_BYTE_TEXTS = [
    "中文注释：读取配置文件并返回结果。日本語のコメント。한국어 주석",
    "emoji 🚀✅❌🙂 and a family 👩‍👩‍👧 with zero-width joiners",
    "math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∑∫√, Größe, naïve café",
]


def _stream(tokenizer, ids, chunk=1):
    detok = IncrementalDetokenizer(tokenizer)
    deltas = []
    for start in range(0, len(ids), chunk):
        piece = ids[start : start + chunk]
        deltas.append(detok.add(piece, final=start + chunk >= len(ids)))
    return deltas


@pytest.mark.parametrize("text", MULTI_BYTE_TEXTS)
def test_the_tiny_tokenizer_really_splits_these_characters_across_tokens(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    split = [i for i in ids if REPLACEMENT_CHARACTER in tokenizer.decode([i])]
    assert split, "no token holds a partial character; the detokenizer tests would prove nothing"


@pytest.mark.parametrize("text", MULTI_BYTE_TEXTS)
@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_deltas_are_whole_characters_and_add_up_to_the_text(tokenizer, text, chunk):
    ids = tokenizer.encode(text, add_special_tokens=False)
    deltas = _stream(tokenizer, ids, chunk)
    assert "".join(deltas) == text
    for delta in deltas:
        assert REPLACEMENT_CHARACTER not in delta
        delta.encode("utf-8")  # whole characters only: no lone surrogates either


def test_an_invalid_byte_sequence_is_emitted_once_it_cannot_become_valid(tokenizer):
    lead_byte = next(
        i
        for i in range(len(tokenizer))
        if tokenizer.decode([i]) == REPLACEMENT_CHARACTER
        and tokenizer.convert_ids_to_tokens(i) == "ä"  # byte 0xE4 in the byte-level alphabet
    )
    ascii_ids = tokenizer.encode("ok", add_special_tokens=False)
    detok = IncrementalDetokenizer(tokenizer)
    assert detok.add([lead_byte]) == ""  # could still become 中-like: held back
    delta = detok.add(ascii_ids)
    assert delta == REPLACEMENT_CHARACTER + "ok"
    assert detok.text == tokenizer.decode([lead_byte, *ascii_ids])


def test_an_unfinished_character_at_the_end_is_flushed_on_the_final_token(tokenizer):
    ids = tokenizer.encode("🚀", add_special_tokens=False)[:-1]
    detok = IncrementalDetokenizer(tokenizer)
    assert detok.add(ids) == ""
    assert detok.add([], final=True) == tokenizer.decode(ids)


def test_special_tokens_are_not_part_of_the_text(tokenizer):
    ids = [*tokenizer.encode("done", add_special_tokens=False), tokenizer.eos_token_id]
    assert "".join(_stream(tokenizer, ids)) == "done"


def test_a_stop_string_split_across_deltas_is_found_and_cut():
    matcher = StopStringMatcher(["</answer>"])
    outputs = [matcher.push(part) for part in ["The result", " is 4</an", "swer> and more", "!"]]
    emitted = "".join(text for text, _ in outputs)
    assert emitted == "The result is 4"
    assert [stopped for _, stopped in outputs] == [False, False, True, True]
    assert matcher.stopped_on == "</answer>"


def test_the_earliest_of_several_stop_strings_wins():
    matcher = StopStringMatcher(["world", "lo w"])
    text, stopped = matcher.push("hello world", final=True)
    assert (text, stopped, matcher.stopped_on) == ("hel", True, "lo w")


def test_text_held_back_for_a_possible_stop_string_is_released_at_the_end():
    matcher = StopStringMatcher(["STOP"])
    first, _ = matcher.push("no ST")
    last, stopped = matcher.push("", final=True)
    assert first + last == "no ST"
    assert not stopped


def test_without_stop_strings_nothing_is_held_back():
    matcher = StopStringMatcher([])
    assert matcher.push("abc") == ("abc", False)
