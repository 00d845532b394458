"""Language tags: scripts settle CJK, a statistical model the rest."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.lang import LanguageTagger

CASES = [
    # (instruction, input, output, expected)
    (
        "写一个函数，计算列表中所有数字的和。",
        "",
        "def total(numbers):\n    return sum(numbers)\n\nprint(total([1, 2, 3]))  # prints 6",
        "zh",
    ),
    ("用Python写一个函数", "", "", "zh"),
    ("What does the Chinese word 你好 mean?", "", "It means hello.", "en"),
    (
        "この文章を英語に翻訳してください。",
        "今日は天気がいいです。",
        "The weather is nice today.",
        "ja",
    ),
    ("이 문장을 영어로 번역하세요.", "오늘은 날씨가 좋아요.", "The weather is nice today.", "ko"),
    ("Name three colors.", "", "Red, green, blue.", "en"),
    ("Sort the list.", "", "", "en"),
    ("请翻译成英文", "I love apples.", "我爱苹果。", "zh"),
]


@pytest.fixture(scope="module", params=["fasttext", "langdetect"])
def tagger(request):
    return LanguageTagger(request.param)


@pytest.mark.parametrize(
    "instruction,input_,output,expected", CASES, ids=[c[0][:16] for c in CASES]
)
def test_language_of_a_record(tagger, instruction, input_, output, expected):
    assert tagger(instruction, input_, output) == expected


def test_a_one_word_english_instruction_with_the_default_backend():
    # langdetect calls "Summarize." Romanian; the default fastText backend gets it right.
    assert LanguageTagger()("Summarize.", "", "") == "en"
    assert LanguageTagger()("Define entropy.", "", "") == "en"


def test_english_prompt_with_a_chinese_answer_is_still_judged_by_the_prompt():
    tagger = LanguageTagger("fasttext")
    assert tagger("Translate 'good morning' into Chinese.", "", "早上好") == "en"


def test_chinese_answer_decides_an_empty_prompt_script():
    # A prompt of digits only has no language; the Chinese answer decides.
    assert LanguageTagger("none")("12 + 30 = ?", "", "答案是四十二。") == "zh"


def test_without_a_model_the_declared_language_or_und():
    assert LanguageTagger("none", ["en"])("Name three colors.", "", "Red.") == "en"
    assert LanguageTagger("none", ["en", "zh"])("Name three colors.", "", "Red.") == "und"
    assert LanguageTagger("none")("Name three colors.", "", "Red.") == "und"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="fasttext, langdetect, none"):
        LanguageTagger("cld3")


@pytest.mark.parametrize("key,lang", [("alpaca_gpt4_zh", "zh"), ("alpaca_gpt4_en", "en")])
def test_bundled_samples_are_tagged_with_their_language(tagger, key, lang):
    cat = load_catalog()
    rows = json.loads(cat.local_path(cat.datasets[key].sample[0]).read_text("utf-8"))
    # No declared language to fall back on: the tagger alone decides.
    counts = Counter(tagger(r["instruction"], r["input"], r["output"]) for r in rows)
    assert counts[lang] / len(rows) >= 0.97, counts


def test_build_with_the_langdetect_backend(tmp_path):
    from .conftest import read_manifest, run_cli

    out = tmp_path / "out"
    run_cli("build", "--sample", "--out", out, "--lang-backend", "langdetect", "gpt4")
    sources = read_manifest(out)["sources"]
    assert set(sources) == {"alpaca_gpt4_en", "alpaca_gpt4_zh"}
    assert sources["alpaca_gpt4_en"]["lang_counts"]["en"] >= 97
    assert sources["alpaca_gpt4_zh"]["lang_counts"]["zh"] >= 97
    assert read_manifest(out)["build_options"]["lang_backend"] == "langdetect"


def test_an_unknown_backend_on_the_command_line_is_a_clear_error(tmp_path):
    from .conftest import run_cli

    result = run_cli(
        "build", "--sample", "--out", tmp_path / "out", "--lang-backend", "cld3", ok=False
    )
    assert "--lang-backend must be one of fasttext, langdetect, none" in result.output


def test_plain_english_rule_settles_english_without_the_model_and_nothing_else():
    from alpacacot.lang import _is_plain_english

    # Real Alpaca instruction + answer that the fastText model alone calls French.
    assert _is_plain_english(
        "Describe a unique way to cook a steak. One unique way to cook a steak is to sous vide it "
        "in a water bath at a precise temperature and then sear it in a very hot pan."
    )
    assert not _is_plain_english(
        "Le chat dort sur la table et mon ami mange une pomme dans la cuisine"
    )
    assert not _is_plain_english(
        "Der Hund spielt im Garten und die Katze schlaeft auf dem Sofa heute"
    )
    # Real Alpaca records with few function words, English prompts about foreign text: the model
    # sent the first to itself and called the second Spanish.
    assert _is_plain_english(
        "Generate five descriptive words for a lion. Majestic, powerful, cunning, courageous, noble."
    )
    assert _is_plain_english(
        "Translate the sentence 'I am very happy' from Spanish to English.\n"
        "Estoy muy feliz. I am very happy."
    )
    # Real CodeAlpaca record that the model calls German: code keywords are English words.
    assert _is_plain_english(
        "Create a function to concatenate two strings\ndef concat(str1, str2):\n  return str1 + str2"
    )
    assert not _is_plain_english("Summarize the text.")  # too short to judge: the model decides
    assert not _is_plain_english("写一个 function that returns the sum of a list")  # not ASCII


# Other languages written without accents, as people often type them: each has English function
# words in it ("a", "in", "is", "was"), and the rule must still leave it to the model.
UNACCENTED = {
    "es": "Escribe una lista de cinco frutas que se pueden comer en el desayuno y explica por que "
    "son saludables para los ninos.",
    "fr": "Ecris un court poeme sur la mer et le vent, puis explique pourquoi les vagues sont si "
    "fortes en hiver.",
    "it": "Scrivi una breve storia su un gatto che vive in una biblioteca e ama leggere i libri di "
    "notte, a casa.",
    "pt": "Escreva uma lista de tres cidades do Brasil e explique por que sao importantes para a "
    "economia do pais.",
    "de": "Schreibe eine kurze Geschichte uber einen Hund, der in einer grossen Stadt lebt und was "
    "er im Park spielt.",
    "nl": "Schrijf een korte tekst over het weer in Nederland en leg uit waarom het zo vaak regent "
    "in de herfst, het is koud.",
    "id": "Tuliskan daftar lima makanan khas Indonesia dan jelaskan mengapa makanan itu disukai "
    "banyak orang.",
    "sv": "Skriv en kort berattelse om en katt som bor i ett stort hus och tycker om att sova hela "
    "dagen.",
}


@pytest.mark.parametrize("code", list(UNACCENTED))
def test_unaccented_european_text_is_not_taken_for_english(code):
    from alpacacot.lang import LanguageTagger, _is_plain_english

    text = UNACCENTED[code]
    assert not _is_plain_english(text)
    assert LanguageTagger("fasttext")(text, "", text) == code


def test_a_translation_prompt_is_in_the_language_of_the_prompt():
    """Real Alpaca records: the prompt is English, the answer German or Japanese; fastText alone,
    reading the answer too, says de (0.97) and ja."""
    from alpacacot.lang import LanguageTagger

    tag = LanguageTagger("fasttext")
    assert (
        tag(
            'Translate this sentence into German: \u201cThat is a very nice car"',
            "",
            "Das ist ein sehr sch\u00f6nes Auto.",
        )
        == "en"
    )
    assert (
        tag(
            'Translate the sentence "It\'s been a long day" into Japanese',
            "",
            "今日は長い一日だった。",
        )
        == "en"
    )
