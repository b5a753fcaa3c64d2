"""Builds bench/retrieval/dataset.json: the retrieval eval set kept in the repo.

Eight clients of one org, each with multi-session conversations (turns) and external events
(emails, calendar entries, documents, notes, CRM changes), plus distractors that share
vocabulary. Every fact has two labelled questions:
- `lexical`: names the fact's rare tokens (invoice numbers, flight codes, people) in a way a
  keyword engine matches but a small embedding model blurs;
- `semantic`: a paraphrase with (almost) no word in common with the answer;
- `mixed`: a natural question sharing a word or two with the answer.
Families of near-identical items that differ only in an identifier (invoice, ticket and flight
numbers) get lexical questions only: that is where dense retrieval is weak.
A question's label is the ids of the items that answer it. Deterministic: re-running writes the
same file. Run: python bench/retrieval/build_dataset.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("dataset.json")

CLIENTS = {
    "sarah": dict(name="Marcus Feld", company="Norrland Logistics", city="Lisbon",
                  code="INV-4471", flight="LH1187", restaurant="Casa Alfama", project="Bluefin",
                  dog="Biscuit", doctor="Okafor", amount="48,200 euros", day="March 14",
                  school="Greenway Academy", car="Volvo XC60", wine="Barolo 2016",
                  hotel="Hotel Lumen", board="Kestrel Partners"),
    "tom": dict(name="Priya Raman", company="Halden Steelworks", city="Osaka",
                code="INV-9023", flight="JL0044", restaurant="Kanda Soba", project="Northstar",
                dog="Pepper", doctor="Lindqvist", amount="12,750 dollars", day="June 2",
                school="Riverside Montessori", car="Tesla Model Y", wine="Chablis 2019",
                hotel="Park Kyoto", board="Ardent Capital"),
    "li": dict(name="Jonas Berger", company="Vireo Biotech", city="Toronto",
               code="INV-3318", flight="AC0871", restaurant="Maple & Ash", project="Quartz",
               dog="Nori", doctor="Haddad", amount="7,900 pounds", day="October 9",
               school="Lakeshore Prep", car="Audi e-tron", wine="Rioja 2015",
               hotel="The Drake", board="Summit Ventures"),
    "mo": dict(name="Elena Sokolova", company="Brightwater Energy", city="Dubai",
               code="INV-6650", flight="EK0202", restaurant="Zuma Marina", project="Falcon",
               dog="Mango", doctor="Petrov", amount="95,000 dirhams", day="January 21",
               school="Emirates International", car="Range Rover", wine="Sancerre 2020",
               hotel="Atlantis Palm", board="Gulfstream Holdings"),
    "ana": dict(name="Tobias Wren", company="Cobalt Robotics", city="Berlin",
                code="INV-1209", flight="BA0992", restaurant="Nobelhart", project="Orchid",
                dog="Ziggy", doctor="Nakamura", amount="33,400 euros", day="September 30",
                school="Spree Academy", car="BMW i4", wine="Riesling 2018",
                hotel="Hotel Adlon", board="Brandt Family Office"),
    "raj": dict(name="Grace Adeyemi", company="Tidewell Shipping", city="Singapore",
                code="INV-7781", flight="SQ0318", restaurant="Burnt Ends", project="Monsoon",
                dog="Kiwi", doctor="Fernandes", amount="61,000 dollars", day="April 17",
                school="Tanglin Trust", car="Lexus RX", wine="Malbec 2017",
                hotel="Raffles", board="Straits Growth Fund"),
    "eva": dict(name="Henrik Dahl", company="Polar Foods", city="Oslo",
                code="INV-5540", flight="SK4410", restaurant="Maaemo", project="Aurora",
                dog="Loki", doctor="Brennan", amount="210,000 kroner", day="November 5",
                school="Oslo International", car="Polestar 2", wine="Pinot Noir 2014",
                hotel="The Thief", board="Fjord Equity"),
    "ben": dict(name="Sofia Marquez", company="Redline Media", city="Mexico City",
                code="INV-8812", flight="AM0650", restaurant="Pujol", project="Jaguar",
                dog="Taco", doctor="Whitfield", amount="18,300 dollars", day="July 11",
                school="Colegio Olinca", car="Porsche Macan", wine="Tempranillo 2016",
                hotel="Las Alcobas", board="Sierra Madre Capital"),
}

# Natural questions that share one or two words with the answer and paraphrase the rest: the
# common case, where keywords and meaning each get part of the way. One per FACTS entry, in order.
MIXED = [
    "what do we owe {company}?",
    "which seat did we get on the {city} flight?",
    "seat preferences on planes",
    "dinner booking for four people",
    "{company} negotiation value",
    "revenue growth in the board presentation",
    "vaccinations for {dog}",
    "replacement for the CFO",
    "meeting with the teacher at {school}",
    "oil change for the car",
    "anniversary wine order",
    "harbour view room in {city}",
    "audited accounts before the investor call",
    "vacation days in the contract draft",
    "consulate appointment for renewal",
    "restaurant allergies to tell them about",
    "three year renewal champion",
    "new device login warning",
    "pricing agenda at the offsite",
    "birthday present delivery Friday",
    "annual rent increase on the office",
    "morning meetings preference",
    "donation letters for the tax adviser",
    "gym refund",
]

# (source, text, lexical question, semantic question)
FACTS = [
    ("email", "Invoice {code} from {company} for {amount} is due on {day}. Finance flagged it.",
     "invoice {code}", "By when must that outstanding supplier bill be settled?"),
    ("calendar", "Flight {flight} to {city} departs at 07:40, seat 3A, terminal 2.",
     "{flight} departure", "What time does the plane leave in the morning?"),
    ("note", "Always book aisle seats; never accept red-eye connections or middle seats.",
     "aisle seat red-eye", "How does the client like to be seated when travelling by air?"),
    ("turn", "User: Book a table at {restaurant} for four.\nAssistant: Reserved {restaurant} "
     "for four people on {day} at 8pm.", "{restaurant} table",
     "Where is the group dinner happening?"),
    ("crm", "Deal {project} with {company} moved to stage negotiation, value {amount}.",
     "{project} deal stage", "How far along is the large sales opportunity?"),
    ("document", "Board deck: quarterly revenue grew 14 percent and churn fell to 2.1 percent.",
     "board deck churn", "How did the business perform financially last quarter?"),
    ("note", "{dog} sees the veterinarian Dr. {doctor} every March for vaccinations.",
     "{dog} Dr. {doctor}", "When is the pet's yearly checkup?"),
    ("email", "{name} resigned as CFO; the last working day is {day}. Start the search for a "
     "replacement.", "{name} resigned", "Who is leaving the head of finance job?"),
    ("calendar", "Parent-teacher conference at {school} on {day} at 16:00 with the homeroom "
     "teacher.", "{school} conference", "When do we meet the kid's teacher?"),
    ("turn", "User: The {car} needs its service.\nAssistant: Booked the {car} at the dealer "
     "workshop for an inspection and oil change next Tuesday.", "{car} service",
     "When is the vehicle going to the garage?"),
    ("note", "Favourite wine is {wine}; order a case for the anniversary.",
     "{wine}", "What bottle should be bought for the celebration?"),
    ("calendar", "Stay at {hotel} in {city}: three nights, suite with harbour view, late "
     "checkout arranged.", "{hotel} suite", "Where will the client sleep on the trip?"),
    ("email", "{board} asked for the audited financial statements before the investor call.",
     "{board} statements", "Which investors want the accounts checked by auditors?"),
    ("document", "Employment contract draft: 25 vacation days, 6 month notice period, "
     "non-compete for 12 months.", "non-compete notice period",
     "How long must someone wait before joining a rival firm?"),
    ("turn", "User: Remind me about the passport.\nAssistant: Your passport expires in August; "
     "renewal appointment set at the consulate.", "passport expires",
     "When does the travel document run out?"),
    ("note", "Allergic to shellfish and peanuts; tell every restaurant in advance.",
     "shellfish peanuts allergy", "Which foods make the client sick?"),
    ("crm", "{company} renewal signed for three years; champion is {name}.",
     "{company} renewal", "Which customer agreed to extend the contract?"),
    ("email", "Security alert: unusual login to the {project} workspace from a new device.",
     "{project} login alert", "Was there a suspicious attempt to access the account?"),
    ("calendar", "Quarterly offsite in {city}, {day}, agenda: hiring plan and pricing.",
     "offsite {city}", "Where does the leadership team gather to plan?"),
    ("turn", "User: What gift for Maya?\nAssistant: Ordered noise-cancelling headphones for "
     "Maya's 16th birthday, delivery Friday.", "Maya headphones",
     "What present did we get for the teenager?"),
    ("document", "Office lease: rent increases 4 percent annually, break clause after year "
     "three.", "lease break clause", "Can we get out of the building agreement early?"),
    ("note", "Prefers meetings before 11am and keeps Friday afternoons free for family.",
     "Friday afternoons meetings", "When should calls not be scheduled?"),
    ("email", "Tax adviser needs the signed {code} receipts and the donation letters by {day}.",
     "tax adviser receipts", "What paperwork does the accountant want?"),
    ("turn", "User: Cancel the gym.\nAssistant: Cancelled the Equinox membership; refund of "
     "the final month confirmed.", "Equinox membership",
     "Did we stop paying for the fitness club?"),
]

# Near-duplicate families: same wording, different identifiers. Only keyword search can tell
# "INV-4472" from "INV-4473"; each gets a lexical question only.
VENDORS = ("Acme Paper", "Blue Harbor IT", "Cedar Catering", "Delta Couriers", "Evergreen Print",
           "Fulcrum Legal", "Granite Security", "Helix Cloud", "Ivory Cleaning", "Juniper Travel",
           "Keystone Office", "Lumen Energy")
TICKET_TOPICS = ("laptop battery replacement", "VPN access reset", "phone screen repair")
ROUTES = ("Paris", "Zurich", "New York")


def families(client: str, slots: dict[str, str], rnd: random.Random
             ) -> list[tuple[str, str, str]]:
    out = []
    base = slots["code"][:-1]
    for i, vendor in enumerate(VENDORS):
        code = f"{base[:-1]}{(int(slots['code'][-2:]) + 7 * (i + 1)) % 100:02d}"
        out.append(("email", f"Invoice {code} from {vendor} for {rnd.randint(2, 90)}00 euros is "
                    f"due at month end.", f"invoice {code}"))
    for topic in TICKET_TOPICS:
        ticket = f"SR-{rnd.randint(1000, 9999)}"
        out.append(("crm", f"Support ticket {ticket} opened: {topic}; status in progress.",
                    f"ticket {ticket} status"))
    for route in ROUTES:
        flight = f"{slots['flight'][:2]}{rnd.randint(1000, 9999)}"
        out.append(("calendar", f"Flight {flight} to {route}, seat 2C, departs at "
                    f"{rnd.randint(6, 21)}:15.", f"flight {flight}"))
    return out


DISTRACTORS = [
    ("turn", "User: Thanks, that is all for today.\nAssistant: You are welcome, talk soon."),
    ("turn", "User: Can you check my schedule?\nAssistant: You have three meetings tomorrow."),
    ("email", "Newsletter: ten tips for better sleep and productivity on the road."),
    ("email", "Reminder: update your password on the intranet portal this month."),
    ("calendar", "Team standup every weekday at 09:15, 15 minutes."),
    ("note", "Coffee order: flat white with oat milk."),
    ("document", "Travel policy: economy for flights under six hours, receipts within 30 days."),
    ("crm", "Lead from the website contact form; no budget confirmed yet."),
    ("turn", "User: Draft a thank-you note.\nAssistant: Drafted a short thank-you email."),
    ("calendar", "Lunch with the marketing team at the usual place."),
    ("email", "The quarterly all-hands recording is available on the intranet."),
    ("note", "Printer on floor 3 is out of toner again."),
    ("document", "Meeting minutes: discussed roadmap priorities, no decisions taken."),
    ("turn", "User: Any news on the budget?\nAssistant: No update yet from finance."),
    ("calendar", "Dentist reminder: routine cleaning in the autumn."),
    ("email", "Conference invitation: annual logistics summit, registration open."),
]


def main() -> None:
    rnd = random.Random(7)
    items: list[dict[str, object]] = []
    questions: list[dict[str, object]] = []
    for client, slots in CLIENTS.items():
        entries = [(src, text.format(**slots), q1.format(**slots), q2.format(**slots), True,
                    q3.format(**slots))
                   for (src, text, q1, q2), q3 in zip(FACTS, MIXED, strict=True)]
        entries += [(src, text, q, "", True, "")
                    for src, text, q in families(client, slots, rnd)]
        entries += [(src, text, "", "", False, "") for src, text in DISTRACTORS]
        rnd.shuffle(entries)
        for n, (source, text, q_lex, q_sem, is_fact, q_mix) in enumerate(entries):
            item_id = f"{client}-{'f' if is_fact else 'd'}{n:02d}"
            session = f"s{n % 4 + 1}"  # four sessions per client, interleaved over time
            items.append({"client": client, "item_id": item_id, "source": source,
                          "conversation": session if source == "turn" else None,
                          "day": n, "text": text})
            if is_fact:
                questions.append({"client": client, "kind": "lexical", "question": q_lex,
                                  "answers": [item_id]})
            if q_mix:
                questions.append({"client": client, "kind": "mixed", "question": q_mix,
                                  "answers": [item_id]})
            if q_sem:
                questions.append({"client": client, "kind": "semantic", "question": q_sem,
                                  "answers": [item_id]})
    OUT.write_text(json.dumps({"org": "evalorg", "items": items, "questions": questions},
                              indent=1) + "\n")
    print(f"{len(items)} items, {len(questions)} questions, {len(CLIENTS)} clients -> {OUT}")


if __name__ == "__main__":
    main()
