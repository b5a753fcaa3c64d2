"""Tool use for the local model (pure: prompts, grammars, parsing; no model here).

Small local models cannot follow a tool-calling chat template reliably (llama.cpp's
`chatml-function-calling` handler produced tool names as text and empty answers), so a tool
call is made in two constrained steps:

1. route: a grammar that only admits the enabled tool names or `none` (a few tokens); a tool
   must beat `none` by its margin in first-token logits (the adapter's `_Margin`);
2. arguments: for a tool, its JSON arguments plus `confidence` and `rationale`, generated
   under a grammar that llama.cpp builds from the tool's JSON schema, so the output always
   parses and has every required field. Otherwise the adapter streams a normal answer.

Prompt layout (`layout`): every prompt of every turn starts with the same stable block (tools
with their argument fields, routing rules and examples, argument rules, the data rule: the
same for every client with this tool set), then the turn block (context's `system` and
`context`: canary, persona, preferences, dates), then the conversation, then for the argument
and answer steps what was looked up (`recall`: outcomes, summary, memory), and only then the
step's one-line instruction. llama.cpp reuses the evaluated prefix it shares with the last
sequence, so a turn evaluates the stable block never (after the first turn), its own block
once, and each step's instruction.

The schema given to the grammar drops length and pattern bounds (the executor validates
them against the same models and refuses what does not fit), because the grammar converter
expands bounded repetitions into deeply nested rules that are slow to match. The rationale
alone stays bounded, with llama.cpp's native `{0,n}` repetition, so it cannot ramble on.
Date-time fields are written as the client's local wall-clock time with no offset (a small
model given "tomorrow at 9" for a Tokyo client wrote `09:00:00Z`, nine hours off); context
attaches the client's zone when it normalises the arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from switchboard_common.model import (
    OFFSET_RULE,
    ChatMessage,
    TextBlock,
    ToolDef,
    ToolResultBlock,
    ToolUseBlock,
)
from switchboard_common.redaction import EMAIL_ADDRESS
from switchboard_common.tools import CATALOG, CONFIDENCE, RATIONALE
from switchboard_common.untrusted import DATA_RULE

NONE = "none"
ROUTE_MAX_TOKENS = 8
ARGS_MAX_TOKENS = 384
RATIONALE_CHARS = 60
_DROP = frozenset({"maxLength", "minLength", "pattern", "maxItems", "minItems", "title"})
LOCAL_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$"


def _local_time(spec: dict[str, Any]) -> dict[str, Any]:
    """A date-time field (alone or among `anyOf` options) as local wall-clock time."""
    if spec.get("format") == "date-time":
        return {"type": "string", "pattern": LOCAL_TIME}
    if "anyOf" in spec:
        return {**spec, "anyOf": [_local_time(o) for o in spec["anyOf"]]}
    return spec


def route_grammar(names: Sequence[str]) -> str:
    return "root ::= " + " | ".join(json.dumps(n) for n in [*names, NONE])


EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Set up a 30-minute sync with Priya next Tuesday at 11", "calendar_create"),
    ("Is my Thursday morning still open?", "calendar_list"),
    ("Write to dana@acme.io asking for the signed contract", "email_draft"),
    ("Put 'renew the car insurance' on my list for the 15th", "task_add"),
    ("What have I still got to do this week?", "task_list"),
    ("What did the architect tell us about the roof estimate?", "memory_search"),
    ("How do I write a good out-of-office message?", NONE),
    ("What is 15% of 2,400?", NONE),
    ("Give me a synonym for 'important'", NONE),
    ("Turn 'we will be late' into Spanish", NONE),
    ("Great, thank you!", NONE),
)
"""Generic routing examples, written for the prompt (never taken from an evaluation set): a
small model asked to name a tool picks one as soon as a word fits ("memo", "tomorrow"), so
the stable block shows requests that mention such words and still need no tool."""


def _fields(tool: ToolDef) -> str:
    props = tool.input_schema.get("properties", {})
    return "; ".join(f"{name}: {spec.get('description', spec.get('type', ''))}"
                     for name, spec in props.items() if name not in (CONFIDENCE, RATIONALE))


def stable_block(tools: Sequence[ToolDef]) -> str:
    """The start of every local prompt of every turn with this tool set (route, arguments,
    answer): identical across clients and turns, so llama.cpp evaluates it once and reuses it
    (its prefix match with the last evaluated sequence). Nothing per client or per turn here:
    that follows in the turn block. It holds what the steps used to say each time (argument
    fields and rules, the data rule), so a step's own instruction is one short line."""
    if not tools:
        return ""
    names = {t.name for t in tools}
    lines = "\n".join(f"- {t.name}: {t.description} Arguments: {_fields(t)}." for t in tools)
    examples = "\n".join(f'"{text}" -> {name}' for text, name in EXAMPLES
                         if name == NONE or name in names)
    return (
        f"{DATA_RULE}\n"
        "Each turn you either answer the client in words or call one tool for them. "
        f"Tools:\n{lines}\n"
        f"- {NONE}: no tool. The request is a question you can answer in words from general "
        "knowledge, advice, an explanation or definition, a translation or calculation, "
        "writing help without a recipient, thanks or small talk.\n"
        "Choose a tool only when the request asks to create, change or look up the client's "
        "calendar, mail, tasks or records.\n"
        f"Examples:\n{examples}\n"
        "Tool arguments are one JSON object: dates are YYYY-MM-DD; times are the client's "
        "local time as YYYY-MM-DDTHH:MM with no offset (the platform adds the client's time "
        "zone); copy the dates the request names from the 'In this request' line, and resolve "
        "other words like 'tomorrow' or 'Friday' with the dates listed there. Use only facts "
        "from the request and the conversation; never invent e-mail addresses or names. "
        f"{CONFIDENCE}: 0.9 or more when every needed detail is given, 0.5 or less when you "
        f"had to guess. {RATIONALE}: a few words.")


def layout(stable: str, system: str, context: str,
           messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The shared part of every prompt of a turn: the stable block (`stable_block`, built
    once by the caller, which also needs its length), then the turn block
    (persona, preferences and canary from `system`; the date lines from `context`), then the
    conversation. Each step appends only its short instruction (`step`). The data
    rule, which context puts in every `system`, is in the stable block instead (once); the
    line asking for offsets (`OFFSET_RULE`) is left out, the stable block saying otherwise."""
    if stable:
        system = system.replace(DATA_RULE + "\n", "")
        context = "\n".join(line for line in context.split("\n")
                             if not line.startswith(OFFSET_RULE))
    text = "\n\n".join(p for p in (stable, system, context) if p)
    return [*([{"role": "system", "content": text}] if text else []), *messages]


def recall(text: str) -> list[dict[str, str]]:
    """What context looked up for the turn (outcomes, summary, retrieved memory), after the
    conversation: the answer step and an action's argument step read it; the route step, which
    shares the prefix before it, does not, nor does a lookup's argument step (`lookup`).
    Routing on it made a small model act on what the memory was about instead of what the
    client asked: with a client's past bookings retrieved, "Ok, perfect" became an e-mail
    draft and "tips for a productive Monday" a calendar lookup (10 of 18 no-tool requests got
    a call end to end, 1 of 18 without memory)."""
    return [{"role": "system", "content": text}] if text else []


def step(instruction: str) -> dict[str, str]:
    """A step's instruction, after the conversation: a system line, so the client's own
    words stay theirs and everything before it is the same for every step."""
    return {"role": "system", "content": instruction}


ROUTE_STEP = ("Which tool does the client's last message need? Answer with the tool name "
              "only, or none.")


def args_step(tool: ToolDef) -> str:
    return f"Write the arguments of {tool.name} for the client's last message."


def _strip(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key in _DROP:
                continue
            out[key] = ({k: _strip(v) for k, v in value.items()} if key == "properties"
                        else _strip(value))
        return out
    if isinstance(schema, list):
        return [_strip(v) for v in schema]
    return schema


def args_grammar(tool: ToolDef) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf  # pure Python, no native load

    schema = _strip(tool.input_schema)
    schema["properties"][RATIONALE] = {"type": "string", "pattern": r'^[^"\\\n]{0,9}$'}
    # Date fields required too (null stays valid): the converter puts optional fields after
    # confidence and rationale, where a small model closes the object before the date it was
    # given (a task's due date). Other optional fields stay optional: required ones get
    # invented (attendees, locations).
    dated = {name for name, spec in schema["properties"].items()
             if any(o.get("format") in ("date", "date-time")
                    for o in (spec, *spec.get("anyOf", [])))}
    schema["required"] = [n for n in schema["properties"]
                          if n in dated or n in schema.get("required", [])]
    schema["properties"] = {n: _local_time(spec) for n, spec in schema["properties"].items()}
    gbnf: str = json_schema_to_gbnf(json.dumps(schema))
    # Replace the converter's nested expansion of the rationale's bound by native repetition.
    line = f'rationale ::= "\\"" rationale-1{{0,{RATIONALE_CHARS}}} "\\"" space'
    return re.sub(r"^rationale ::= .*$", lambda _: line, gbnf, count=1, flags=re.M)


def parse_args(text: str) -> dict[str, Any]:
    """The grammar guarantees JSON unless generation was cut short; a cut-off object gives
    no arguments, which the executor refuses (and the model is told) like any bad input."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _holds_address(spec: dict[str, Any]) -> bool:
    return "email" in (spec.get("format"), spec.get("items", {}).get("format"))


def addressed(tool: ToolDef) -> bool:
    """Whether the tool cannot be called without an e-mail address (a required field)."""
    props = tool.input_schema.get("properties", {})
    return any(_holds_address(props.get(n, {})) for n in tool.input_schema.get("required", []))


_NAME = re.compile(r"[^\W\d_]{4,}")
_NOT_NAMES = frozenset({"about", "could", "from", "have", "please", "that", "their", "them",
                       "there", "they", "this", "what", "when", "where", "which", "will",
                       "with", "would", "your", "mail", "email", "note", "send", "write"})


def _named(address: str, said: str) -> bool:
    """Whether `said` names the address's owner: a word of four letters or more (not a
    function word) inside the address's local part ("Olivia" in olivia.brandt@…, "Smith" in
    jsmith@…)."""
    local = address.split("@", 1)[0].lower()
    return any(w in local for w in {m.lower() for m in _NAME.findall(said)} - _NOT_NAMES)


def grounded(tools: Sequence[ToolDef], own: str, said: str = "", recall: str = ""
             ) -> list[ToolDef]:
    """The tools the model may pick given what it was told: one that needs an address is
    offered only when the turn itself names an address (`own`: its system, context and
    conversation, not the stable block's examples), or when what was looked up (`recall`,
    memory) holds the address of someone the conversation (`said`) names. Otherwise its call
    could only carry an invented address, which the data rule forbids (enforced here, not
    hoped for). Asked for a bio or a welcome speech, a small model routes to the e-mail draft
    because the request is writing; with a contact's address in memory, it drafted mail for
    "Ok, perfect" and "what does net 30 mean" (5 of 30 no-tool requests end to end)."""
    if EMAIL_ADDRESS.search(own) or any(_named(a, said)
                                        for a in EMAIL_ADDRESS.findall(recall)):
        return list(tools)
    return [t for t in tools if not addressed(t)]


def _address(value: Any) -> str | None:
    """The address in an argument as `EMAIL_ADDRESS` reads it in text: one copied from the end
    of a sentence ("... is olivia.brandt@fernhill.co.") keeps its trailing dot, which the
    address it was copied from does not have."""
    if not isinstance(value, str):
        return None
    found = EMAIL_ADDRESS.fullmatch(value.strip().strip(".,;:!?()<>[]\"'"))
    return found.group(0) if found else None


def ground(tool: ToolDef, arguments: dict[str, Any], known: str
           ) -> tuple[dict[str, Any] | None, list[str]]:
    """The arguments without the addresses that appear nowhere in what the model was told
    (a small model fills "a 1:1 with Lukas" with `lukas@example.com`), and those addresses.
    None instead of arguments when a required address field is left empty: that call cannot
    be made without inventing its recipient."""
    seen = {a.lower() for a in EMAIL_ADDRESS.findall(known)}
    required = set(tool.input_schema.get("required", []))
    out: dict[str, Any] = dict(arguments)
    made_up: list[str] = []
    for name, spec in tool.input_schema.get("properties", {}).items():
        if not _holds_address(spec) or name not in arguments:
            continue
        value = arguments[name]
        kept: list[str] = []
        for item in value if isinstance(value, list) else [value]:
            address = _address(item)
            if address is not None and address.lower() in seen:
                kept.append(address)
            else:
                made_up.append(item)
        if name in required and not kept:
            return None, made_up
        out[name] = kept if isinstance(value, list) else (kept[0] if kept else None)
    return out, made_up


def known_text(system: str, context: str, messages: Sequence[dict[str, str]]) -> str:
    """What the model was told in this turn, for `grounded` and `ground`."""
    return "\n".join([system, context, *(m["content"] for m in messages)])


REPORT = ("Now reply to the client in one or two sentences, speaking to them as 'you': what "
          "you did, what you found, or that it awaits their approval. Only what the results "
          "above say.")
"""Closes the tool results of an answer after tool calls: given only the quoted result blobs,
the 1.5B model answered "I apologize, but I cannot assist with that request" after proposing
the very event it was asked for; asked to "tell the client", it wrote "The client was informed
that..."."""


def as_plain(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Chat messages for a model without tool blocks: calls and results become text lines,
    so an answer after a tool call can say what happened."""
    out: list[dict[str, str]] = []
    for m in messages:
        if isinstance(m.content, str):
            text = m.content
        else:
            lines = []
            for block in m.content:
                if isinstance(block, TextBlock):
                    lines.append(block.text)
                elif isinstance(block, ToolUseBlock):
                    lines.append(f"[called {block.name} {json.dumps(block.input)}]")
                elif isinstance(block, ToolResultBlock):
                    lines.append(f"[result: {block.content}]")
            text = "\n".join(lines)
        out.append({"role": m.role, "content": text})
    return out


def after_lookups(messages: Sequence[ChatMessage]) -> bool | None:
    """Whether the newest message carries tool results, and if so whether every call so far
    in this turn was read-only. None: the newest message is the user's request (route it).
    True: only lookups ran, so the model may still act on what it found (route again).
    False: an action already ran or awaits approval: answer in words, do not route again."""
    if not messages or isinstance(messages[-1].content, str):
        return None
    if not any(isinstance(b, ToolResultBlock) for b in messages[-1].content):
        return None
    called = [b.name for m in messages if not isinstance(m.content, str)
              for b in m.content if isinstance(b, ToolUseBlock)]
    return all(lookup(n) for n in called)


def lookup(name: str) -> bool:
    """A read-only tool of the catalog. Its arguments are the request's own terms (a window,
    a query), so its argument step does not read what was looked up (`recall`)."""
    return CATALOG[name].read_only if name in CATALOG else False
