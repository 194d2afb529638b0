import random
import unicodedata

import pytest

from embedq.content import build_text, default_template, field_label, template_fields

# the sample application's registrations (sql/sample/schema.sql): fields and templates
TEMPLATES = {
    "profile": "Name: {display_name}\nBio: {bio}\nInterests: {interests}",
    "course": "Course: {title}\nCategory: {category}\nTags: {tags}\nDescription: {description}\n"
    "Requirements: {requirements}\nLearning objectives: {learning_objectives}",
    "lesson": "Lesson: {title}\n{description}\n{content}",
    "post": "Post: {title}\n{body}",
    "comment": "Comment: {body}",
}
PROFILE = ["display_name", "bio", "interests"]
COURSE = ["title", "description", "category", "tags", "requirements", "learning_objectives"]
LESSON = ["title", "description", "content"]
POST = ["title", "body"]
COMMENT = ["body"]


@pytest.mark.parametrize(
    ("content_type", "fields", "values", "expected"),
    [
        pytest.param(
            "profile",
            PROFILE,
            {"display_name": "Ana Lima", "bio": "Cook.", "interests": ["cooking", "yoga"]},
            "Name: Ana Lima\nBio: Cook.\nInterests: cooking, yoga",
            id="profile",
        ),
        pytest.param(
            "profile",
            PROFILE,
            {"display_name": "Ana", "bio": None, "interests": ["", None, "  tea ", "\tyoga"]},
            "Name: Ana\nInterests: tea, yoga",
            id="profile: None bio, empty and None array items",
        ),
        pytest.param(
            "profile",
            PROFILE,
            {"display_name": "Ana", "bio": "   ", "interests": []},
            "Name: Ana",
            id="profile: blank bio, empty array",
        ),
        pytest.param(
            "profile",
            PROFILE,
            {"display_name": "Ana", "interests": [None, ""]},
            "Name: Ana",
            id="profile: missing field, array of nothing",
        ),
        pytest.param(
            "profile",
            PROFILE,
            {"display_name": "Ana", "bio": "First.\n\nSecond.", "interests": ["tea"]},
            "Name: Ana\n\nBio: First.\n\nSecond.\n\nInterests: tea",
            id="profile: a multi-paragraph field is set off by blank lines",
        ),
        pytest.param(
            "course",
            COURSE,
            {
                "title": "Knife Skills",
                "description": "Cut safely.",
                "category": "Cooking",
                "tags": ["knives", "basics"],
                "requirements": "A knife.",
                "learning_objectives": "Dice an onion.",
            },
            "Course: Knife Skills\nCategory: Cooking\nTags: knives, basics\nDescription: Cut safely."
            "\nRequirements: A knife.\nLearning objectives: Dice an onion.",
            id="course: its own order and labels",
        ),
        pytest.param(
            "course",
            [*COURSE, "level"],
            {"title": "Knife Skills", "tags": [], "level": "beginner", "price_cents": 900},
            "Course: Knife Skills",
            id="course: a template is the whole text (a registered field it leaves out is not in it)",
        ),
        pytest.param(
            "lesson",
            LESSON,
            {"title": "Dicing", "description": "Onions.", "content": "Step one.\n\nStep two."},
            "Lesson: Dicing\n\nOnions.\n\nStep one.\n\nStep two.",
            id="lesson: description and content unlabelled",
        ),
        pytest.param(
            "post",
            POST,
            {"title": "Hello", "body": "First post!"},
            "Post: Hello\n\nFirst post!",
            id="post",
        ),
        pytest.param(
            "article",
            ["body"],
            {"title": "Not registered", "body": "Only the body."},
            "Body: Only the body.",
            id="no template: only registered fields count",
        ),
        pytest.param("comment", COMMENT, {"body": "Nice one"}, "Comment: Nice one", id="comment"),
        pytest.param("comment", COMMENT, {"body": " \n\t "}, "", id="comment: whitespace only"),
        pytest.param("comment", COMMENT, {}, "", id="comment: missing field"),
        pytest.param("post", POST, {"title": None, "body": None}, "", id="post: all None"),
        pytest.param(
            "recipe",
            ["name", "learning_objectives", "prepTimeMinutes", "is_vegan", "rating"],
            {"name": "Dal", "learning_objectives": "Tempering", "prepTimeMinutes": 30, "is_vegan": True, "rating": 4.0},
            "Name: Dal\nLearning objectives: Tempering\nPrep time minutes: 30\nIs vegan: yes\nRating: 4",
            id="unknown type: generic labels in registry order",
        ),
        pytest.param(
            "recipe",
            ["name", "servings", "spicy", "score"],
            {"name": "Dal", "servings": 0, "spicy": False, "score": 4.5},
            "Name: Dal\nServings: 0\nSpicy: no\nScore: 4.5",
            id="unknown type: zero and false are values, not empty",
        ),
        pytest.param(
            "recipe",
            ["steps"],
            {"steps": "Soak.\n\n\n\nBoil.\n\nServe."},
            "Steps: Soak.\n\nBoil.\n\nServe.",
            id="unknown type: paragraphs kept, blank lines collapsed",
        ),
        pytest.param(
            "note",
            ["meta"],
            {
                "meta": {
                    "level": "beginner",
                    "duration": {"weeks": 6, "hours_per_week": 2.5},
                    "online": True,
                    "tools": ["knife", None, "pan"],
                    "notes": None,
                    "extra": {},
                }
            },
            "Meta: level: beginner; duration: (weeks: 6; hours per week: 2.5); online: yes; tools: knife, pan",
            id="json object flattened",
        ),
        pytest.param(
            "note",
            ["faq"],
            {"faq": [{"q": "Why?", "a": "Because."}, {"q": "How?", "a": None}, {}]},
            "Faq: (q: Why?; a: Because.); (q: How?)",
            id="json array of objects",
        ),
        pytest.param(
            "note",
            ["grid"],
            {"grid": [[1, 2], [], [3]]},
            "Grid: (1, 2); (3)",
            id="json nested arrays",
        ),
        pytest.param(
            "note",
            ["meta"],
            {"meta": {"summary": "line one\n\nline two", "tags": ["a\tb"]}},
            "Meta: summary: line one line two; tags: a b",
            id="json strings are put on one line",
        ),
        pytest.param(
            "note",
            ["meta"],
            {"meta": {}},
            "",
            id="empty json object",
        ),
    ],
)
def test_build_text(content_type, fields, values, expected):
    assert build_text(fields, values, TEMPLATES.get(content_type)) == expected


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        pytest.param("Price: {price} {currency}", {"price": 12, "currency": "EUR"}, "Price: 12 EUR", id="two fields"),
        pytest.param(
            "Price: {price} {currency}",
            {"price": None, "currency": "EUR"},
            "Price:  EUR",
            id="a line stays while any of its fields has content",
        ),
        pytest.param("Price: {price} {currency}", {}, "", id="a line whose fields are all empty goes"),
        pytest.param("Recipe card\nName: {name}", {"name": "Dal"}, "Recipe card\nName: Dal", id="literal line kept"),
        pytest.param("Recipe card\nName: {name}", {}, "Recipe card", id="literal line kept alone"),
        pytest.param("{{json}} {name}", {"name": "Dal"}, "{json} Dal", id="escaped braces"),
        pytest.param("\n\nName: {name}\n\n", {"name": "Dal"}, "Name: Dal", id="blank template lines ignored"),
        pytest.param(
            "Name: {name}\nNotes: {notes}",
            {"name": "Dal", "notes": "One.\n\nTwo."},
            "Name: Dal\n\nNotes: One.\n\nTwo.",
            id="a value of several lines makes a block",
        ),
        pytest.param(
            "{name}\nRating: {rating}",
            {"name": "Dal", "rating": 4.0},
            "Dal\n\nRating: 4",
            id="a field alone on its line is a block",
        ),
        pytest.param("Name: {name}", {"name": "{x}"}, "Name: {x}", id="values are not templates"),
    ],
)
def test_templates(template, values, expected):
    assert build_text(template_fields(template), values, template) == expected


def test_without_a_template_every_registered_field_is_labelled():
    fields = ["displayName", "bio"]
    assert default_template(fields) == "Display name: {displayName}\nBio: {bio}"
    assert build_text(fields, {"displayName": "Ana", "bio": "Cook."}) == "Display name: Ana\nBio: Cook."


@pytest.mark.parametrize("template", ["Name: {name", "Name: {name:>10}", "Name: {name!r}", "Name: {}"])
def test_malformed_templates_are_refused(template):
    with pytest.raises(ValueError):
        template_fields(template)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("  a \t\t b  ", "a b", id="spaces and tabs collapsed, stripped"),
        pytest.param("a  \n  b", "a\nb", id="spaces around a line break"),
        pytest.param("a\n\n\n\n\nb", "a\n\nb", id="at most one blank line"),
        pytest.param("a\n \t \n\n b", "a\n\nb", id="blank lines with spaces"),
        pytest.param("a\r\nb\rc", "a\nb\nc", id="Windows and old Mac line breaks"),
        pytest.param("a\x00b\x07c\x1bd\x7fe\x9ff", "abcdef", id="control characters removed"),
        pytest.param("a\x0cb\x0bc", "a\nb\nc", id="form feed and vertical tab break lines"),
        pytest.param("a\u2028b\u2029c", "a\nb\n\nc", id="Unicode line and paragraph separators"),
        pytest.param("caf\u0065\u0301", "caf\u00e9", id="NFC"),
        pytest.param("\ufeffhello", "hello", id="byte order mark"),
        pytest.param("ok\ufffd?", "ok?", id="replacement character"),
        pytest.param("ok\ud800 then\udfff", "ok then", id="lone surrogates"),
        pytest.param("smile \ud83d\ude00", "smile \U0001f600", id="surrogate pair joined"),
        pytest.param("a\u00a0\u3000b", "a b", id="no-break and ideographic spaces"),
        pytest.param("中文　内容。", "中文 内容。", id="Chinese"),
        pytest.param("\x00\x01 \t\n\ufffd", "", id="nothing left"),
    ],
)
def test_build_text_cleans_values(raw, expected):
    assert build_text(COMMENT, {"body": raw}, TEMPLATES["comment"]) == (f"Comment: {expected}" if expected else "")
    assert build_text(["text"], {"text": raw}) == (f"Text: {expected}" if expected else "")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(["  a  b ", "c\x00d", "\ud800"], "a b, cd", id="array items cleaned"),
        pytest.param({"k\x00ey_name": "v\u0301"}, "key name: v\u0301", id="dict keys cleaned"),
    ],
)
def test_build_text_cleans_nested_values(raw, expected):
    assert build_text(["x"], {"x": raw}) == unicodedata.normalize("NFC", f"X: {expected}")


@pytest.mark.parametrize(
    ("column", "label"),
    [
        ("learning_objectives", "Learning objectives"),
        ("title", "Title"),
        ("displayName", "Display name"),
        ("userID", "User ID"),
        ("HTTPStatus", "HTTP status"),
        ("avatar_url", "Avatar url"),
        ("price-cents", "Price cents"),
        ("__weird__", "Weird"),
        ("x", "X"),
    ],
)
def test_field_label(column, label):
    assert field_label(column) == label


_ALPHABET = (
    "abc XYZ 012 \t\n\r\x00\x07\x1b\x7f\x85\x9f\u00a0\u0301\u200b\u2028\u2029\u3000\ufeff\ufffd"
    "\ud800\udbff\udc00\udfff\U0001f600中文。"
)


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 2 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([0, 1, -7, 2.5, True, False])
    if kind < 5:
        return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 40)))
    if kind < 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}


@pytest.mark.parametrize("seed", range(200))
def test_build_text_output_is_always_clean(seed):
    rng = random.Random(seed)
    template = rng.choice([*TEMPLATES.values(), None])
    fields = ["title", "body", "bio", "tags", "extra", *(template_fields(template) if template else [])]
    values = {field: _random_value(rng) for field in fields}

    text = build_text(fields, values, template)

    text.encode("utf-8")  # no lone surrogates
    assert text == text.strip()
    assert unicodedata.normalize("NFC", text) == text
    assert "\ufffd" not in text and "\ufeff" not in text
    assert not any(unicodedata.category(c) == "Cc" and c != "\n" for c in text.replace("\t", ""))
    assert "  " not in text and "\t" not in text and "\n\n\n" not in text
    assert " \n" not in text and "\n " not in text


@pytest.mark.parametrize("seed", range(300))
def test_the_fast_path_for_clean_ascii_gives_what_the_full_cleaning_gives(seed):
    from embedq.content import _clean, clean_text

    rng = random.Random(seed)
    pieces = [
        "word",
        "Word.",
        " ",
        "  ",
        "\t",
        "\n",
        "\n\n",
        "\n\n\n",
        "\r\n",
        "\r",
        "\x0b",
        "\x0c",
        "\x00",
        "\x1f",
        "\x7f",
        "-",
        "CS-4821",
        "(x)",
        " \n",
        "\n ",
    ]
    text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
    assert clean_text(text) == _clean(text)
