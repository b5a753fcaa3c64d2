"""The local model's tool-use helpers: grammars compile for every tool, loops are caught."""

from __future__ import annotations

import json

from llama_cpp.llama_grammar import LlamaGrammar

from switchboard_common.model import ChatMessage, ToolResultBlock, ToolUseBlock
from switchboard_common.redaction import EMAIL_ADDRESS
from switchboard_common.tools import CATALOG, model_tools
from switchboard_common.untrusted import DATA_RULE
from switchboard_llm_stream.domain import local_tools
from switchboard_llm_stream.domain.repetition import LoopGuard


def test_every_tool_has_a_compiling_argument_grammar_with_a_bounded_rationale() -> None:
    for tool in model_tools(list(CATALOG)):
        text = local_tools.args_grammar(tool)
        assert f"rationale-1{{0,{local_tools.RATIONALE_CHARS}}}" in text
        assert LlamaGrammar.from_string(text, verbose=False) is not None
    names = list(CATALOG)
    assert LlamaGrammar.from_string(local_tools.route_grammar(names), verbose=False)


def test_date_times_are_local_wall_clock_without_an_offset() -> None:
    """The zone is attached by context (dates.normalise_arguments), never guessed by a small
    model: the grammar admits `2026-12-01T09:00` and nothing with `Z` or an offset."""
    tool = next(t for t in model_tools(list(CATALOG)) if t.name == "calendar_create")
    grammar = LlamaGrammar.from_string(local_tools.args_grammar(tool), verbose=False)
    assert grammar is not None
    start = json.loads(json.dumps(tool.input_schema))["properties"]["start"]
    assert local_tools._local_time(start) == {"type": "string",
                                              "pattern": local_tools.LOCAL_TIME}


def test_cut_off_arguments_give_no_arguments() -> None:
    assert local_tools.parse_args('{"title": "x", "confidence": 0.9}') == {
        "title": "x", "confidence": 0.9}
    assert local_tools.parse_args('{"title": "x", "rationale": "and so on') == {}


def test_after_lookups_the_model_may_act_after_an_action_it_reports() -> None:
    def turn(*tools: str) -> list[ChatMessage]:
        calls = [ToolUseBlock(id=f"t{i}", name=n) for i, n in enumerate(tools)]
        results = [ToolResultBlock(tool_use_id=f"t{i}", content="{}") for i in range(len(tools))]
        return [ChatMessage(role="user", content="cancel my 3 pm"),
                ChatMessage(role="assistant", content=list(calls)),
                ChatMessage(role="user", content=list(results))]

    assert local_tools.after_lookups([ChatMessage(role="user", content="hi")]) is None
    assert local_tools.after_lookups(turn("calendar_list")) is True
    assert local_tools.after_lookups(turn("calendar_list", "calendar_delete")) is False
    plain = local_tools.as_plain(turn("calendar_list"))
    assert plain[1]["content"].startswith("[called calendar_list")
    assert json.loads(plain[2]["content"].removeprefix("[result: ").removesuffix("]")) == {}


def test_loop_guard_stops_repeated_blocks_and_lines() -> None:
    guard = LoopGuard()
    words = ("Dear", "Anna,", "the", "budget", "is", "$240,000.")
    assert not any(guard.looping(w + " ") for w in words)
    guard = LoopGuard()
    stopped = [guard.looping("[Your Position]\n") for _ in range(5)]
    assert stopped.index(True) == 2
    guard = LoopGuard()
    assert any(guard.looping("la la ") for _ in range(10))


def test_every_step_of_every_turn_starts_with_the_same_stable_block() -> None:
    """llama.cpp reuses the evaluated prefix shared with the last sequence: the route and
    argument prompts of a turn differ only in their last message, and two clients' turns
    share the whole stable block (no canary, name or date in it)."""
    tools = model_tools(["calendar_create", "task_add", "memory_search"])
    plain = [{"role": "user", "content": "Schedule a call with John tomorrow at 9"}]

    def turn(system: str, context: str) -> list[dict[str, str]]:
        return local_tools.layout(local_tools.stable_block(tools), system, context, plain)

    base = turn(f"[sbc-1] You work for Sarah.\n{DATA_RULE}\nEmail tone: warm.",
                "Now: Monday 2026-11-30 10:15 in Europe/Berlin (UTC+01:00).")
    calendar = next(t for t in tools if t.name == "calendar_create")
    route = [*base, local_tools.step(local_tools.ROUTE_STEP)]
    arguments = [*base, local_tools.step(local_tools.args_step(calendar))]
    assert route[:-1] == arguments[:-1] == base and route[-1] != arguments[-1]
    assert len(route[-1]["content"]) < 100 and len(arguments[-1]["content"]) < 100

    stable = local_tools.stable_block(tools)
    other = turn("[sbc-2] You work for Kenji.", "Now: Tuesday 2026-12-01 09:00 in Asia/Tokyo.")
    assert base[0]["content"].startswith(stable) and other[0]["content"].startswith(stable)
    assert "sbc-" not in stable and "2026" not in stable and "Sarah" not in stable
    # The data rule is said once, in the stable block, not again in the turn block.
    assert base[0]["content"].count(DATA_RULE) == 1
    assert "start:" in stable and "due:" in stable  # argument fields live there too


def test_a_tool_needing_an_address_is_offered_only_when_the_turn_names_one() -> None:
    """Writing help without a recipient ("a two-line bio") is answered, not drafted to an
    invented address; the stable block's own example address does not count."""
    tools = model_tools(["email_draft", "task_add", "calendar_list"])
    stable = local_tools.stable_block(tools)
    assert EMAIL_ADDRESS.search(stable)  # the examples hold one, yet:
    bio = local_tools.known_text("persona", "Today is 2026-12-01.",
                                 [{"role": "user", "content": "Write me a two-line bio"}])
    assert [t.name for t in local_tools.grounded(tools, bio)] == ["task_add", "calendar_list"]
    mail = local_tools.known_text("", "", [{"role": "user",
                                            "content": "Email Ana.B@acme.io the agenda"}])
    assert [t.name for t in local_tools.grounded(tools, mail)] == [
        "email_draft", "task_add", "calendar_list"]
    # An address only memory holds counts when the conversation names its owner.
    memory = "Client: send it to olivia.brandt@fernhill.co. Assistant: drafted."
    for said, offered in (("Email Olivia the budget", True), ("Write to Ms Brandt", True),
                          ("Ok, perfect", False), ("What does net 30 mean?", False),
                          ("Send this with your note", False)):
        own = local_tools.known_text("working for Olivia", "", [{"content": said}])
        names = [t.name for t in local_tools.grounded(tools, own, said, memory)]
        assert ("email_draft" in names) is offered, said


def test_addresses_nobody_gave_are_dropped_and_a_call_without_its_recipient_is_not_made(
        ) -> None:
    mail = model_tools(["email_draft"])[0]
    known = local_tools.known_text("", "memory: Ana's address is ana.b@acme.io", [])
    args = {"to": ["Ana.B@acme.io"], "cc": [], "subject": "s", "body": "b"}
    assert local_tools.ground(mail, args, known) == (args, [])
    assert local_tools.ground(mail, {**args, "cc": ["boss@acme.io"]}, known) == (
        args, ["boss@acme.io"])
    assert local_tools.ground(mail, {**args, "to": ["john@example.com"]}, known) == (
        None, ["john@example.com"])
    # Copied from the end of a sentence, an address keeps the sentence's dot: still the same.
    assert local_tools.ground(mail, {**args, "to": ["ana.b@acme.io."]}, known) == (
        {**args, "to": ["ana.b@acme.io"]}, [])
    # An optional address field loses what was invented; the call stands ("a 1:1 with Lukas").
    event = model_tools(["calendar_create"])[0]
    meeting = {"title": "1:1 with Lukas", "start": "2026-12-01T09:15",
               "attendees": ["lukas@example.com"]}
    assert local_tools.ground(event, meeting, "Schedule a 1:1 with Lukas") == (
        {**meeting, "attendees": []}, ["lukas@example.com"])
    assert not local_tools.addressed(event)
    assert local_tools.addressed(mail)

