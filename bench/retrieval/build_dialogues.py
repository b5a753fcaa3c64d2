"""Builds bench/retrieval/dialogues.json: the second retrieval eval set, unlike the first.

Where dataset.json is an assistant's world (emails, invoices, identifiers), this one is long
multi-session chat between two friends, the shape of public conversational-memory benchmarks:
24 dated sessions per conversation, short chatty turns with speakers, facts stated once in
passing ("we named him Biscuit") among small talk that shares their vocabulary (dogs, music,
travel), and questions written the way a reader asks them later:
- `single`: one evidence turn, paraphrased ("What is the name of Maya's dog?" for "We named
  the puppy Biscuit");
- `temporal`: "When did ..." — the answer is the evidence turn's date, which the turn's text
  does not say ("yesterday"); some name the month instead ("Which city did Maya visit in
  May 2023?"), so only the event date can tell two trips apart;
- `multi`: two evidence turns from different sessions (a later turn refers to a fact by a
  name given earlier; or a question that gathers two facts).
Each turn is ingested as one event: id `D<session>:<turn>` (ids hold ':'), text
`<speaker>: <utterance>`, occurred_at = the session's date. Deterministic.
Run: python bench/retrieval/build_dialogues.py
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("dialogues.json")
PAIRS = [("Maya", "Jonah"), ("Ines", "Theo"), ("Keiko", "Samir"), ("Lucia", "Omar"),
         ("Freya", "Daniel"), ("Amara", "Lukas")]
REL = ["yesterday", "last weekend", "a few days ago", "this morning", "on Saturday"]

# name -> (values for the slot, statement variants, reply variants, questions)
# Statements are first person; questions paraphrase them (other words for the same thing).
FACTS: dict[str, dict[str, Any]] = {
    "pet": dict(
        v=[("beagle", "Biscuit"), ("corgi", "Pepper"), ("husky", "Nori"), ("poodle", "Mango"),
           ("labrador", "Ziggy"), ("terrier", "Loki")],
        say=["Guess what, I adopted a {0} puppy from the shelter {rel}! We named him {1}.",
             "{rel} we brought home a little {0} from the rescue, his name is {1}."],
        reply=["Aww, I love puppies! Send me pictures!", "A new furry friend, how exciting!"],
        single="What is the name of {name}'s dog?", temporal="When did {name} get a dog?",
        follow=("{1} chewed through my favourite sneakers again, I can't stay mad at him.",
                "What did {name}'s dog destroy?")),
    "instrument": dict(
        v=["cello", "violin", "ukulele", "saxophone", "piano", "drums"],
        say=["I started taking {0} lessons {rel}, my fingers are so sore.",
             "I finally signed up for {0} classes, the first one was {rel}."],
        reply=["Music is such a good outlet, keep at it!", "That must be fun to practice."],
        single="Which musical instrument is {name} learning to play?",
        temporal="When did {name} begin music lessons?"),
    "trip": dict(
        v=["Lisbon", "Kyoto", "Reykjavik", "Marrakesh", "Vancouver", "Naples"],
        say=["We just got back from {0} {rel}. The food there was incredible.",
             "I spent a week in {0}, flew home {rel}, still jet lagged."],
        reply=["I've always wanted to travel there!", "Sounds like an amazing vacation."],
        single="Which city did {name} go on holiday to?",
        temporal="When did {name} travel to {0}?", dated="Which city did {name} visit in {month}?"),
    "job": dict(
        v=[("nurse", "Saint Mary hospital"), ("data analyst", "Brightline"),
           ("teacher", "Oakridge school"), ("architect", "Studio Vale"),
           ("chef", "Harbor Kitchen"), ("paramedic", "the county ambulance service")],
        say=["Big news, I accepted an offer to work as a {0} at {1}!",
             "I signed the contract {rel}, I'm going to be a {0} at {1}."],
        reply=["Congratulations, that's huge!", "You deserve it, you worked so hard."],
        single="What new position did {name} take?", temporal="When did {name} get hired?"),
    "race": dict(
        v=[("half marathon", "1 hour 58 minutes"), ("10k", "52 minutes"),
           ("marathon", "4 hours 10 minutes"), ("triathlon", "3 hours 5 minutes")],
        say=["I ran my first {0} {rel} and finished in {1}!",
             "Crossed the finish line of the {0} {rel}, {1}, my legs are dead."],
        reply=["Wow, that's impressive!", "I could never do that, well done."],
        single="What endurance event did {name} complete?",
        temporal="When did {name} compete in the {0}?"),
    "book": dict(
        v=[("The Night Circus", "Erin Morgenstern"), ("Piranesi", "Susanna Clarke"),
           ("Circe", "Madeline Miller"), ("Educated", "Tara Westover"),
           ("Klara and the Sun", "Kazuo Ishiguro"), ("Pachinko", "Min Jin Lee")],
        say=["I'm reading {0} by {1}, I can't put it down.",
             "Started {0} {rel}, {1} writes so beautifully."],
        reply=["I need a good read, I'll add it to my list.", "Books are the best escape."],
        single="What novel has {name} been enjoying?"),
    "bake": dict(
        v=["carrot cake", "lemon tart", "chocolate souffle", "apple pie", "banana bread"],
        say=["I baked a {0} for my mom's birthday {rel}, it disappeared in minutes.",
             "For my dad's birthday I made a {0}, everyone asked for the recipe."],
        reply=["Yum, save me a slice next time!", "You're such a good cook."],
        single="What dessert did {name} prepare for the family celebration?",
        temporal="When did {name} bake for a parent's birthday?"),
    "volunteer": dict(
        v=["animal shelter", "food bank", "children's hospital", "library literacy program",
           "community garden"],
        say=["I signed up to volunteer at the {0} every Thursday.",
             "I've been helping out at the {0} on Thursdays, it feels meaningful."],
        reply=["That's so kind of you.", "Giving back is really important."],
        single="Where does {name} do charity work?"),
    "injury": dict(
        v=[("ankle", "basketball"), ("wrist", "tennis"), ("knee", "soccer"),
           ("shoulder", "volleyball"), ("back", "climbing")],
        say=["I sprained my {0} playing {1} {rel}, so I'm on the couch for a while.",
             "Hurt my {0} during {1} {rel}, the doctor said two weeks of rest."],
        reply=["Oh no, take care of yourself!", "Rest up and feel better soon."],
        single="How did {name} get hurt?", temporal="When was {name} injured?"),
    "move": dict(
        v=["Riverside", "the old town", "Hillcrest", "the harbor district", "Maple Heights"],
        say=["We're moving to a new apartment in {0} next month, boxes everywhere.",
             "We signed a lease for a place in {0}, moving day is soon."],
        reply=["Moving is so stressful, good luck!", "A fresh start, how exciting."],
        single="Which neighbourhood is {name} relocating to?"),
    "craft": dict(
        v=["pottery", "woodworking", "knitting", "watercolor", "jewelry making"],
        say=["I joined a {0} workshop at the community center {rel}.",
             "My new hobby is {0}, I go to a class on Tuesday evenings."],
        reply=["You always find the coolest hobbies.", "Show me what you make!"],
        single="What handicraft has {name} taken up?",
        temporal="When did {name} start the workshop?"),
    "concert": dict(
        v=["Arctic Monkeys", "Florence and the Machine", "Coldplay", "Tame Impala", "Adele"],
        say=["I saw {0} live {rel}, best show of my life.",
             "{rel} we went to the {0} concert, I lost my voice singing."],
        reply=["I'm so jealous!", "Live music hits different."],
        single="Which band or artist did {name} watch perform?",
        temporal="When did {name} go to a concert?",
        dated="Which artist did {name} see on stage in {month}?"),
    "garden": dict(
        v=["sunflowers", "basil", "strawberries", "lavender", "chili peppers"],
        say=["I planted {0} on the balcony, they're already sprouting.",
             "My little garden project: {0} in pots by the window."],
        reply=["Plants make a home feel alive.", "I kill every plant I touch, haha."],
        single="What is {name} growing at home?"),
    "exam": dict(
        v=["bar", "driving", "CPA", "nursing board", "sommelier"],
        say=["I passed my {0} exam {rel}! All those late nights paid off.",
             "Results came in {rel}: I passed the {0} exam."],
        reply=["I knew you'd pass!", "Time to celebrate!"],
        single="Which test did {name} pass?", temporal="When did {name} get the exam results?"),
    "car": dict(
        v=[("Subaru Outback", "green"), ("Honda Civic", "red"), ("Volvo wagon", "silver"),
           ("Mini Cooper", "yellow"), ("Tesla", "white")],
        say=["I bought a used {0} {rel}, it's {1} and runs great.",
             "Finally got a car, a {1} {0}!"],
        reply=["Road trip soon?", "No more buses for you!"],
        single="What vehicle did {name} purchase?", temporal="When did {name} buy a car?",
        follow=("The {0} broke down on the highway, had to get it towed.",
                "What happened to {name}'s new car?")),
    "allergy": dict(
        v=[("shellfish", "shrimp"), ("peanuts", "satay"), ("gluten", "pasta"),
           ("dairy", "cheese")],
        say=["Turns out I'm allergic to {0}, so no more {1} for me.",
             "The allergist confirmed {0} is the problem, goodbye {1}."],
        reply=["That's rough, I'm sorry.", "At least now you know."],
        single="What food intolerance does {name} have?"),
    "painting": dict(
        v=["a lighthouse at dusk", "my grandmother's garden", "a city skyline",
           "a fox in the snow", "the lake at sunrise"],
        say=["I finished a painting of {0} for the art fair.",
             "My piece for the local art show is {0}, took me a month."],
        reply=["You're so talented.", "I'd hang that on my wall."],
        single="What did {name} paint for the exhibition?"),
    "camping": dict(
        v=[("Yosemite", "a black bear"), ("the Lake District", "red deer"),
           ("Banff", "an elk"), ("the Dolomites", "a marmot"), ("Glacier park", "a moose")],
        say=["We went camping in {0} {rel} and saw {1} near our tent!",
             "Camping trip to {0}: {1} walked right past us at breakfast."],
        reply=["Scary and amazing at the same time!", "Nature is the best therapy."],
        single="What wild animal did {name} spot outdoors?",
        temporal="When did {name} go camping?",
        dated="Where did {name} camp in {month}?"),
    "language": dict(
        v=["Japanese", "Portuguese", "Korean", "Italian", "Swahili"],
        say=["I'm learning {0} on an app, practicing every morning before work.",
             "I enrolled in an evening {0} course, the grammar is tough."],
        reply=["Learning languages is so good for the brain.", "Say something to me in it!"],
        single="Which foreign language is {name} studying?"),
    "podcast": dict(
        v=["urban legends", "plant-based cooking", "indie video games", "true crime",
           "local history"],
        say=["My friend and I started a podcast about {0}, first episode is out.",
             "We launched our {0} podcast {rel}, twelve listeners already!"],
        reply=["I'll subscribe!", "What a fun project."],
        single="What topic does {name}'s show cover?"),
}
FILLER = [
    "Hey! It's been a while, how have you been?", "I've been so busy with work lately.",
    "That sounds amazing!", "Haha, totally.", "We should catch up more often.",
    "Honestly the week flew by.", "I love dogs, they're so loyal.",
    "Music always helps me relax after a long day.", "I want to travel more this year.",
    "Running is not really my thing, but I admire people who do it.",
    "I've been trying to read more instead of scrolling.", "Cooking at home saves so much money.",
    "The weather has been terrible, rain every day.", "My family is doing well, thanks.",
    "I need a vacation so badly.", "Work has been stressful but I'm managing.",
    "Do you have any plans for the weekend?", "Not much, just relaxing at home.",
    "I watched a great movie last night.", "Exercise really helps my mood.",
    "I'm thinking about picking up a new hobby.", "Sorry for the late reply!",
    "That's so true.", "I'm proud of you, seriously.", "Talk soon, take care!",
    "My car needs a wash, it's covered in dust.", "I tried a new recipe, it was a disaster.",
    "Our neighbours got a cat, it keeps visiting us.", "I've been sleeping badly this week.",
    "Concerts are so expensive these days.", "I should call my parents more.",
    "Gardening seems relaxing but I have no balcony.", "Languages were never my strength.",
]


@dataclass
class Conv:
    cid: str
    a: str
    b: str
    turns: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)


def fill(template: str, value: Any, rel: str, **kw: str) -> str:
    args = value if isinstance(value, tuple) else (value,)
    text = template.format(*args, rel=rel, **kw)
    return text[0].upper() + text[1:]


def build_conv(n: int, rnd: random.Random) -> Conv:
    a, b = PAIRS[n]
    conv = Conv(f"conv{n + 1}", a, b)
    # Each speaker gets 16 of the fact types, with values no other speaker of the pair has.
    plan: list[tuple[str, str, Any]] = []
    for who in (a, b):
        for name in rnd.sample(sorted(FACTS), 16):
            plan.append((who, name, rnd.choice(FACTS[name]["v"])))
    rnd.shuffle(plan)
    date = datetime(2023, 3, 1, 14, 0, tzinfo=UTC) + timedelta(days=n * 9)
    pending_follow: list[tuple[str, str, Any, str]] = []
    sessions = 24
    per_session = -(-len(plan) // sessions)
    for s in range(1, sessions + 1):
        date += timedelta(days=rnd.randint(4, 16), minutes=rnd.randint(0, 600))
        turns: list[tuple[str, str, list[dict[str, Any]] | None]] = []
        speaker = rnd.choice((a, b))
        for _ in range(rnd.randint(10, 16)):
            turns.append((speaker, rnd.choice(FILLER), None))
            speaker = b if speaker == a else a
        facts, plan = plan[:per_session], plan[per_session:]
        for who, name, value in facts:
            f = FACTS[name]
            other = b if who == a else a
            rel = rnd.choice(REL)
            pos = rnd.randint(1, len(turns))
            labels: list[dict[str, Any]] = []
            turns[pos:pos] = [(who, fill(rnd.choice(f["say"]), value, rel), labels),
                              (other, rnd.choice(f["reply"]), None)]
            labels.append({"fact": name, "who": who, "value": value, "date": date})
            if "follow" in f:
                pending_follow.append((who, name, value, "x"))
        # A follow-up from an earlier session refers back to a fact by its name only.
        for who, name, value, _ in [p for p in pending_follow if rnd.random() < 0.5]:
            pending_follow.remove((who, name, value, "x"))
            text, _question = FACTS[name]["follow"]
            turns.insert(rnd.randint(1, len(turns)), (who, fill(text, value, ""),
                                                      [{"follow": name, "who": who}]))
        for i, (who, text, labels) in enumerate(turns, start=1):
            tid = f"D{s}:{i}"
            conv.turns.append({"id": tid, "speaker": who, "text": text,
                               "date": date.isoformat(), "session": s})
            for label in labels or ():
                label["id"] = tid
                conv.turns[-1].setdefault("labels", []).append(label)
    questions(conv, rnd)
    for t in conv.turns:
        t.pop("labels", None)
    return conv


def questions(conv: Conv, rnd: random.Random) -> None:
    facts = {(lab["who"], lab["fact"]): lab for t in conv.turns for lab in t.get("labels", [])
             if "fact" in lab}
    follows = {(lab["who"], lab["follow"]): lab["id"] for t in conv.turns
               for lab in t.get("labels", []) if "follow" in lab}
    months = {}
    for (who, name), lab in facts.items():
        months.setdefault((who, name), lab["date"].strftime("%B %Y"))
    q = conv.questions
    for (who, name), lab in sorted(facts.items()):
        f = FACTS[name]
        value = lab["value"]
        q.append({"question": fill(f["single"], value, "", name=who), "category": "single",
                  "evidence": [lab["id"]]})
        if "temporal" in f:
            q.append({"question": fill(f["temporal"], value, "", name=who),
                      "category": "temporal", "evidence": [lab["id"]]})
        if "dated" in f:
            q.append({"question": fill(f["dated"], value, "", name=who,
                                       month=months[(who, name)]),
                      "category": "temporal", "evidence": [lab["id"]]})
        if (who, name) in follows:
            q.append({"question": fill(f["follow"][1], value, "", name=who),
                      "category": "multi", "evidence": [lab["id"], follows[(who, name)]]})
    # Gathering questions: two hobbies, or what both speakers share an interest in.
    for who in (conv.a, conv.b):
        hobbies = [facts[(who, n)]["id"] for n in ("instrument", "craft", "language", "podcast")
                   if (who, n) in facts]
        if len(hobbies) >= 2:
            q.append({"question": f"What new hobbies and skills has {who} picked up?",
                      "category": "multi", "evidence": hobbies[:2]})
        trips = [facts[(who, n)]["id"] for n in ("trip", "camping") if (who, n) in facts]
        if len(trips) == 2:
            q.append({"question": f"Where has {who} been travelling this year?",
                      "category": "multi", "evidence": trips})
    for name in ("pet", "job", "car", "trip"):
        if (conv.a, name) in facts and (conv.b, name) in facts:
            q.append({"question": fill(FACTS[name]["single"], "", "", name=conv.a)
                      .replace(f"{conv.a}'s", f"{conv.a}'s and {conv.b}'s")
                      .replace(f"did {conv.a}", f"did {conv.a} and {conv.b}"),
                      "category": "multi",
                      "evidence": [facts[(conv.a, name)]["id"], facts[(conv.b, name)]["id"]]})


def main() -> None:
    rnd = random.Random(7)
    convs = [build_conv(n, rnd) for n in range(len(PAIRS))]
    data = {"org": "dlgorg", "conversations": [
        {"id": c.cid, "speakers": [c.a, c.b], "turns": c.turns, "questions": c.questions}
        for c in convs]}
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    n_turns = sum(len(c.turns) for c in convs)
    n_q = sum(len(c.questions) for c in convs)
    cats: dict[str, int] = {}
    for c in convs:
        for qq in c.questions:
            cats[qq["category"]] = cats.get(qq["category"], 0) + 1
    print(f"{len(convs)} conversations, {n_turns} turns, {n_q} questions {cats}")


if __name__ == "__main__":
    main()
