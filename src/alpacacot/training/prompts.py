"""Prompt templates, in one registry keyed by name.

A record (instruction, input, output, history) is rendered as a list of segments
`(text, is_target)`: user turns and template glue are prompt text, each assistant answer (and
its stop text) is a target.
`alpacacot.training.data.encode_example` turns the segments into token ids and masks the prompt from
the loss. The special name `tokenizer` uses the tokenizer's own chat template.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Segment = tuple[str, bool]


@dataclass(frozen=True)
class PromptTemplate:
    """A text template.

    `system`/`system_with_input` open the conversation (the second when the last turn has an input);
    a record's own `system` prompt (schema 1.1) replaces them, wrapped in `system_format`
    (`{system}`); a record without one, or with none in the column, gets the template's opening.
    `user` wraps every user turn (`{content}`, `{round}` = 1-based turn number); `user_with_input`
    wraps the last turn when it has an input; `stop` follows each answer and is learned
    (`{eos}` = the tokenizer's end-of-sequence token); `separator` follows each answer, not learned.
    """

    name: str
    user: str
    user_with_input: str | None = None
    system: str = ""
    system_with_input: str | None = None
    stop: str = "{eos}"
    separator: str = ""
    system_format: str = "{system}\n\n"

    def opening(self, has_input: bool, system: str = "") -> str:
        if system:
            return self.system_format.format(system=system)
        if has_input and self.system_with_input is not None:
            return self.system_with_input
        return self.system

    def user_turn(self, round_: int, content: str, input_: str = "") -> str:
        if input_ and self.user_with_input is not None:
            return self.user_with_input.format(round=round_, instruction=content, input=input_)
        if input_:
            content = f"{content}\n\n{input_}"
        return self.user.format(round=round_, content=content)


TEMPLATES: dict[str, PromptTemplate] = {}


def register_template(template: PromptTemplate) -> PromptTemplate:
    TEMPLATES[template.name] = template
    return template


register_template(
    PromptTemplate(
        # The Stanford Alpaca / alpaca-lora / Alpaca-CoT prompt.
        name="alpaca",
        system=(
            "Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.\n\n"
        ),
        system_with_input=(
            "Below is an instruction that describes a task, paired with an input that provides "
            "further context. Write a response that appropriately completes the request.\n\n"
        ),
        user="### Instruction:\n{content}\n\n### Response:\n",
        user_with_input="### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
        stop="{eos}",
        separator="\n\n",
    )
)
register_template(
    PromptTemplate(
        name="chatml",
        system="<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
        system_format="<|im_start|>system\n{system}<|im_end|>\n",
        user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
        stop="<|im_end|>",
        separator="\n",
    )
)
register_template(
    PromptTemplate(
        # ChatGLM2/3-style rounds, as in Alpaca-CoT's chatglm recipe.
        name="chatglm",
        user="[Round {round}]\n\n问：{content}\n\n答：",
        stop="{eos}",
        separator="\n\n",
    )
)
register_template(
    PromptTemplate(
        # ChatGLM3's role tags.
        name="chatglm3",
        user="<|user|>\n{content}<|assistant|>\n",
        system_format="<|system|>\n{system}",
        stop="{eos}",
    )
)
register_template(
    PromptTemplate(
        # MOSS's turns (fnlp/moss-moon-003-sft): <|Human|> ... <eoh>, <|MOSS|> ... <eom>.
        name="moss",
        user="<|Human|>: {content}<eoh>\n<|MOSS|>:",
        system_format="{system}\n",
        stop="<eom>{eos}",
        separator="\n",
    )
)
TOKENIZER_TEMPLATE = "tokenizer"


def template_names() -> list[str]:
    return [*TEMPLATES, TOKENIZER_TEMPLATE]


def _turns(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    turns = []
    for turn in record.get("history") or []:
        if isinstance(turn, Mapping):
            turns.append((str(turn.get("user") or ""), str(turn.get("assistant") or "")))
        else:
            turns.append((str(turn[0]), str(turn[1])))
    return turns


def render_segments(
    record: Mapping[str, Any], template: str, tokenizer: Any, *, with_answer: bool = True
) -> list[Segment]:
    """Render a record as `(text, is_target)` segments.

    With `with_answer=False` the last answer is left out, leaving the prompt a model completes.
    """
    if template == TOKENIZER_TEMPLATE:
        return _chat_template_segments(record, tokenizer, with_answer)
    if template not in TEMPLATES:
        raise KeyError(
            f"unknown prompt template {template!r}; known: {', '.join(template_names())}"
        )
    tpl = TEMPLATES[template]
    eos = getattr(tokenizer, "eos_token", None) or ""
    stop = tpl.stop.replace("{eos}", eos)
    input_ = str(record.get("input") or "")
    segments: list[Segment] = []
    opening = tpl.opening(bool(input_), str(record.get("system") or ""))
    prompt = opening
    history = _turns(record)
    for i, (user, assistant) in enumerate(history, start=1):
        segments.append((prompt + tpl.user_turn(i, user), False))
        segments.append((assistant + stop, True))
        prompt = tpl.separator
    segments.append(
        (prompt + tpl.user_turn(len(history) + 1, str(record["instruction"]), input_), False)
    )
    if with_answer:
        segments.append((str(record["output"]) + stop, True))
    return segments


def render_prompt(record: Mapping[str, Any], template: str, tokenizer: Any) -> str:
    """The text a model is given at inference time: everything up to the answer."""
    return "".join(
        text for text, _ in render_segments(record, template, tokenizer, with_answer=False)
    )


def _chat_template_segments(
    record: Mapping[str, Any], tokenizer: Any, with_answer: bool
) -> list[Segment]:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "prompt template 'tokenizer' needs a tokenizer with a chat template; "
            f"pick one of {', '.join(TEMPLATES)} with --prompt_template"
        )
    user_last = str(record["instruction"])
    if record.get("input"):
        user_last = f"{user_last}\n\n{record['input']}"
    pairs = [*_turns(record), (user_last, str(record["output"]))]
    system = str(record.get("system") or "")
    render: Callable[..., str] = lambda msgs, gen: tokenizer.apply_chat_template(  # noqa: E731
        msgs, tokenize=False, add_generation_prompt=gen
    )
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    segments: list[Segment] = []
    done = ""
    for i, (user, assistant) in enumerate(pairs):
        messages.append({"role": "user", "content": user})
        prompt = render(messages, True)
        if not prompt.startswith(done):
            raise ValueError("the tokenizer's chat template does not render turns as prefixes")
        segments.append((prompt[len(done) :], False))
        if i == len(pairs) - 1 and not with_answer:
            break
        messages.append({"role": "assistant", "content": assistant})
        full = render(messages, False)
        if not full.startswith(prompt):
            raise ValueError("the tokenizer's chat template does not render turns as prefixes")
        segments.append((full[len(prompt) :], True))
        done = full
    return segments
