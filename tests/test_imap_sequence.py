"""Sequence sets: parsing, resolution against message counts and UID lists, rendering."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_servers.imap.sequence import MAX_NUMBER, SequenceSet, compact, parse_sequence_set


@pytest.mark.parametrize(
    "text, count, expected",
    [
        ("1", 5, [1]),
        ("1:3", 5, [1, 2, 3]),
        ("3:1", 5, [1, 2, 3]),
        ("1:3,5", 5, [1, 2, 3, 5]),
        ("2,1,2,1:2", 5, [1, 2]),
        ("*", 5, [5]),
        ("1:*", 4, [1, 2, 3, 4]),
        ("*:2", 4, [2, 3, 4]),
        ("3:*", 3, [3]),
        ("10:*", 5, [5]),  # n:* with n beyond the end still names the largest
        ("4:9", 5, [4, 5]),  # numbers beyond the count are dropped
        ("7:9", 5, []),
        ("*", 0, []),
        ("1:*", 0, []),
        ("*:*", 3, [3]),
    ],
)
def test_resolve_seq(text, count, expected):
    s = parse_sequence_set(text)
    assert s.resolve_seq(count) == expected
    assert s.resolve(count) == expected


@pytest.mark.parametrize(
    "text, existing, expected",
    [
        ("1:*", [3, 7, 9], [3, 7, 9]),
        ("4:8", [3, 7, 9], [7]),
        ("*", [3, 7, 9], [9]),
        ("10:*", [1, 2, 5], [5]),  # RFC 3501: 10:* on largest UID 5 is 5:10
        ("100:*", [], []),
        ("1:4294967295", [1, 4294967295], [1, 4294967295]),
        ("2,9,2:3,8:9", [1, 2, 3, 4, 8, 9], [2, 3, 8, 9]),
    ],
)
def test_resolve_uids(text, existing, expected):
    s = parse_sequence_set(text)
    assert s.resolve_uids(existing) == expected
    largest = existing[-1] if existing else 0
    assert s.resolve(largest, existing=existing) == expected


def test_resolve_does_not_expand_huge_ranges():
    """1:4294967295 against a few UIDs must be answered by bisection, not by a 4-billion list."""
    s = parse_sequence_set("1:4294967295,5:*")
    existing = list(range(1, 200_000, 7))
    assert s.resolve_uids(existing) == existing


@pytest.mark.parametrize(
    "text, n, largest, expected",
    [
        ("1:3,5", 2, 10, True),
        ("1:3,5", 4, 10, False),
        ("1:3,5", 5, 10, True),
        ("*", 10, 10, True),
        ("*", 9, 10, False),
        ("8:*", 6, 5, True),  # 8:* with largest 5 is the range 5:8
        ("8:*", 4, 5, False),
        ("1:3", 0, 10, False),
    ],
)
def test_contains(text, n, largest, expected):
    assert parse_sequence_set(text).contains(n, largest) is expected


@pytest.mark.parametrize(
    "text, count, maximum, exceeds",
    [
        ("1:3", 5, 3, False),
        ("1:6", 5, 6, True),
        ("*", 5, 5, False),
        ("*", 0, 0, True),  # RFC 3501: "*" on an empty mailbox is a BAD too
        ("1", 0, 1, True),
        ("3:*", 5, 5, False),
        ("7:*", 5, 7, True),  # as Dovecot: n:* is valid only when n <= count
        ("7:*,5:*", 5, 7, True),
        ("6,1:2", 5, 6, True),
    ],
)
def test_max_number_and_exceeds(text, count, maximum, exceeds):
    s = parse_sequence_set(text)
    assert s.max_number(count) == maximum
    assert s.exceeds(count) is exceeds


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("1", "1"),
        ("3,2,1", "1:3"),
        ("5,1:3", "1:3,5"),
        ("4:2,3:8", "2:8"),
        ("*", "*"),
        ("*:4", "4:*"),
        ("*:*", "*"),
        ("1:*,*", "1:*"),
        ("9:*,2:*,1", "1,2:*,9:*"),
    ],
)
def test_str_canonical(text, canonical):
    s = parse_sequence_set(text)
    assert str(s) == canonical
    assert parse_sequence_set(canonical) == s


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("0", "0 is not a valid number"),
        ("1:0", "0 is not a valid number"),
        ("01", "leading zero"),
        ("1,", "empty element"),
        (",1", "empty element"),
        ("1,,2", "empty element"),
        ("1:", "empty element"),
        ("a", "'a' is not a number"),
        (" 1", "' 1' is not a number"),
        ("1:2:3", "'2:3' is not a number"),
        ("$", "SEARCHRES ($) is not supported"),
        ("4294967296", "exceeds 4294967295"),
        ("-1", "'-1' is not a number"),
        ("\u0661", "is not a number"),  # a non-ASCII digit
    ],
)
def test_parse_errors(text, reason):
    with pytest.raises(ValueError, match="Invalid sequence set") as info:
        parse_sequence_set(text)
    assert reason in str(info.value)


def test_largest_number_is_accepted():
    assert parse_sequence_set("4294967295").resolve(MAX_NUMBER, [MAX_NUMBER]) == [MAX_NUMBER]


@pytest.mark.parametrize(
    "numbers, text",
    [
        ([], ""),
        ([5], "5"),
        ([1, 2, 3, 5], "1:3,5"),
        ([5, 3, 1, 2, 2], "1:3,5"),
        ([10, 11, 13, 14, 20], "10:11,13:14,20"),
    ],
)
def test_compact(numbers, text):
    assert compact(numbers) == text


def test_from_numbers():
    s = SequenceSet.from_numbers([9, 3, 4, 5, 9])
    assert s == SequenceSet(ranges=((3, 5), (9, 9)))
    assert str(s) == "3:5,9"
    assert s.resolve_uids([1, 4, 9, 12]) == [4, 9]


def test_compact_rejects_zero():
    with pytest.raises(ValueError):
        compact([0, 1])


def test_sets_are_immutable_and_hashable():
    s = parse_sequence_set("1:3")
    with pytest.raises(AttributeError):
        s.ranges = ()  # type: ignore[misc]
    assert {s: 1}[parse_sequence_set("3,1,2")] == 1


# -- properties ------------------------------------------------------------------------------

numbers = st.integers(min_value=1, max_value=60)
ends = st.one_of(numbers.map(str), st.just("*"))
elements = st.one_of(
    numbers.map(str),
    st.just("*"),
    st.tuples(ends, ends).map(":".join),
)
set_texts = st.lists(elements, min_size=1, max_size=6).map(",".join)


def naive(text: str, largest: int) -> set[int]:
    """The RFC 3501 reading, by brute force over small numbers."""
    out: set[int] = set()
    for part in text.split(","):
        ends = [largest if e == "*" else int(e) for e in part.split(":")]
        out.update(range(min(ends), max(ends) + 1))
    return out


@given(set_texts, st.integers(min_value=0, max_value=70))
def test_resolve_matches_brute_force(text, largest):
    s = parse_sequence_set(text)
    expected = sorted(n for n in naive(text, largest) if 1 <= n <= largest)
    assert s.resolve_seq(largest) == expected
    for n in range(0, 72):
        assert s.contains(n, largest) == (n in naive(text, largest))


@given(set_texts, st.lists(st.integers(min_value=1, max_value=70), unique=True).map(sorted))
def test_resolve_uids_matches_brute_force(text, existing):
    s = parse_sequence_set(text)
    largest = existing[-1] if existing else 0
    names = naive(text, largest)
    assert s.resolve_uids(existing) == [uid for uid in existing if uid in names]


@given(set_texts, st.integers(min_value=0, max_value=70))
def test_str_round_trip_keeps_meaning(text, largest):
    s = parse_sequence_set(text)
    again = parse_sequence_set(str(s))
    assert again == s
    assert again.resolve_seq(largest) == s.resolve_seq(largest)
    explicit = [int(e) for part in text.split(",") for e in part.split(":") if e != "*"]
    assert s.max_number(largest) == max(explicit + ([largest] if "*" in text else []))


@given(st.lists(st.integers(min_value=1, max_value=MAX_NUMBER), max_size=30))
def test_compact_round_trip(values):
    text = compact(values)
    if not values:
        assert text == ""
        return
    assert parse_sequence_set(text).resolve_uids(sorted(set(values))) == sorted(set(values))
    assert len(text.split(",")) <= len(set(values))
