"""Build the labelled retrieval sets under ``tests/data/memory_sets/`` (deterministic).

Five sets of different character, each with at least 40 questions and near-miss
distractors for every question, so that a search must tell apart memories that look alike:

- ``paraphrase``: facts about a user's life and work, asked about in other words; every
  fact has a twin on the same subject with a different detail, and distractors that share
  a surface word with the question but not its meaning.
- ``identifiers``: invoices, tickets, orders, SKUs, hosts, error codes, versions, flights,
  pull requests; every fact has a twin whose identifier differs by two swapped digits.
- ``names``: people and organisations with near-miss names (Okafor and Okonkwo, Acme
  Labs and Acme Logistics), each with facts on the same topics.
- ``temporal``: facts that were superseded; the current one must win, and a question
  asked ``as_of`` an earlier time must find the fact valid then.
- ``conversations``: long multi-sentence notes and chat turns stored as
  ``SutramChatStore``/``SutramEpisodicBlock`` store them (``"user: ..."``), asked about a
  detail buried inside.

Wording is drawn from several phrasings per fact and per question (no set is one
template). A set is ``{"name", "memories": [{"key", "text", "namespace", ...}],
"questions": [{"question", "answer", "as_of"?}]}``. ``tests/test_memory_quality.py``
evaluates them held out; ``bench/memory.py`` prints them beside LangGraph's stores.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).parent / "memory_sets"

# -- paraphrase -------------------------------------------------------------------------
# (fact, near-miss twin, questions that share no content word with the fact)
PARAPHRASE = [
    ("The user's daughter is learning to play the cello.", "The user's nephew is learning to play the drums.",
     ["Which stringed instrument is the user's girl studying?", "What music lessons does the user's child take?"]),
    ("The user drives a red electric hatchback to work.", "The user's partner rides a blue scooter to the office.",
     ["What kind of car does the user commute in?"]),
    ("The user is training for the Berlin marathon in September.",
     "The user walked a charity 5k in Hamburg last year.",
     ["Which long-distance race is the user preparing for?", "What running event is on the calendar this autumn?"]),
    ("The user cannot eat shellfish; it gives them hives.", "The user dislikes the taste of olives.",
     ["Is there any seafood the user is allergic to?", "Which food causes the user a skin reaction?"]),
    ("The user's laptop is a 14-inch ThinkPad running Fedora.",
     "The user's desktop tower runs Windows for gaming.",
     ["What portable computer and operating system does the user have?"]),
    ("The user prefers meetings after 10 in the morning.", "The user blocks Friday afternoons for deep work.",
     ["When is the earliest time to book a call with the user?"]),
    ("The user's flat is on the fourth floor with no elevator.", "The user's office building has a rooftop garden.",
     ["Does the user have to climb stairs to get home?"]),
    ("The user pays rent of 1,450 euros each month.", "The user's gym membership costs 45 euros monthly.",
     ["How much does the apartment cost per month?"]),
    ("The user's manager is called Theresa and sits in Dublin.",
     "The user mentors a junior designer named Paul.",
     ["Who does the user report to?", "Who is the user's boss?"]),
    ("The user is vegetarian but still eats eggs.", "The user tried a vegan diet for a month in 2021.",
     ["Does the user eat meat?"]),
    ("The user's cat, Miso, needs thyroid pills twice a day.", "The user's neighbour's dog barks at night.",
     ["What medication does the pet take?", "How often must the feline get its tablets?"]),
    ("The user speaks Portuguese fluently and is learning Korean.",
     "The user took French classes at school but forgot most of it.",
     ["Which languages can the user converse in?"]),
    ("The user's wedding anniversary is on the 12th of June.", "The user's brother was born in late June.",
     ["When did the user get married?"]),
    ("The user keeps their passwords in a hardware security key and a password manager.",
     "The user forgot the code to the garage door twice.",
     ["How does the user protect their login credentials?"]),
    ("The user plays five-a-side football on Tuesday evenings.", "The user watches basketball on Sundays.",
     ["Which sport does the user play during the week?"]),
    ("The user is saving for a house deposit and has 38,000 put aside.",
     "The user bought a used sofa for 300.",
     ["How much money has the user set aside to buy a home?"]),
    ("The user's favourite author is Ursula K. Le Guin.", "The user found a thriller on the train boring.",
     ["Whose novels does the user love most?"]),
    ("The user is afraid of flying and takes trains in Europe.", "The user enjoys long road trips by car.",
     ["Why does the user avoid planes?", "How does the user prefer to travel across the continent?"]),
    ("The user's team ships a release every second Thursday.", "The user's company holds an all-hands each quarter.",
     ["How frequently does the user's group deploy new versions?"]),
    ("The user grows tomatoes and basil on the balcony.", "The user's mother keeps orchids in the kitchen.",
     ["What plants does the user cultivate at home?"]),
    ("The user takes their coffee black with no sugar.", "The user's colleague drinks oat lattes.",
     ["How does the user like the morning brew?"]),
    ("The user studied mechanical engineering in Delft.", "The user's sister studied law in Leiden.",
     ["What degree did the user earn, and where?", "Which university subject did the user major in?"]),
    ("The user has a standing desk and a split ergonomic keyboard.", "The user's chair squeaks.",
     ["What workstation setup does the user have to avoid back pain?"]),
    ("The user's son starts primary school next September.", "The user's niece graduated from college.",
     ["When does the user's boy begin his education?"]),
    ("The user wants reminders sent by text message, never by email.",
     "The user reads newsletters on Saturday mornings.",
     ["Through which channel should notifications reach the user?"]),
    ("The user is colour-blind and cannot tell red from green.", "The user wears a hearing aid in one ear.",
     ["Is there a vision condition the interface should account for?"]),
    ("The user volunteers at a food bank on the first Saturday of each month.",
     "The user donated old clothes to a charity shop.",
     ["What unpaid community work does the user do?"]),
    ("The user's car insurance renews on the 3rd of March.", "The user's passport expires in 2029.",
     ["When is the vehicle policy due to be renewed?"]),
    ("The user likes spicy Sichuan food, the hotter the better.", "The user finds sushi too expensive.",
     ["What cuisine does the user enjoy most?"]),
    ("The user is a night owl and does their best work after 9 pm.", "The user's alarm rings at 6:30.",
     ["When is the user most productive?"]),
    ("The user's landlord is slow to fix the leaking boiler.", "The user's kitchen tap was replaced last year.",
     ["What repair is the user waiting on at home?"]),
    ("The user uses a wheelchair and needs step-free venues.", "The user twisted an ankle hiking in 2019.",
     ["What accessibility needs should be considered when booking places for the user?"]),
    ("The user's grandmother turns ninety in November.", "The user's grandfather passed away in 2015.",
     ["Which relative has a big birthday coming up?"]),
    ("The user is migrating the billing service from Java to Go.", "The user reviewed a Python script for a friend.",
     ["What rewrite project is the user working on?"]),
    ("The user plays chess online most evenings, rated around 1600.", "The user owns a set of playing cards.",
     ["Which board game does the user play on the internet?"]),
    ("The user takes the 7:42 tram to the office.", "The user sometimes cycles home in summer.",
     ["How does the user get to work in the morning?"]),
    ("The user prefers aisle seats on long trips.", "The user always packs a neck pillow.",
     ["Where does the user like to sit on a plane or train?"]),
    ("The user's blood type is O negative.", "The user gave a sample at the clinic last week.",
     ["What is the user's blood group?"]),
    ("The user is writing a fantasy novel set in a floating city.", "The user reads poetry before bed.",
     ["What book is the user working on?", "What is the story the user is drafting about?"]),
    ("The user hates being called by their full first name, Alexandra; they go by Sasha.",
     "The user's email signature includes a job title.",
     ["What nickname should the assistant use for the user?"]),
]
# memories that share a surface word with some question but answer none
PARAPHRASE_NOISE = [
    "The user's printer at work is out of toner.", "A colleague asked the user about the calendar invite.",
    "The user read an article about home prices.", "The user complained that the morning was cold.",
    "The user keeps a spare phone charger in the car.", "The user's week was busy with travel.",
    "The user asked for a summary of the meeting notes.", "The user bought new running socks.",
]


def build_paraphrase(rng: random.Random) -> dict[str, object]:
    memories, questions = [], []
    for i, (fact, twin, asks) in enumerate(PARAPHRASE):
        memories.append({"key": f"fact-{i:02d}", "text": fact, "namespace": ["user", "profile"]})
        memories.append({"key": f"twin-{i:02d}", "text": twin, "namespace": ["user", "profile"]})
        for q in asks:
            questions.append({"question": q, "answer": f"fact-{i:02d}"})
    for i, text in enumerate(PARAPHRASE_NOISE):
        memories.append({"key": f"noise-{i:02d}", "text": text, "namespace": ["user", "profile"]})
    rng.shuffle(memories)
    return {"name": "paraphrase", "memories": memories, "questions": questions}


# -- identifiers ------------------------------------------------------------------------
# (id pattern, fact phrasings, question phrasings); {id} is the identifier, {v} a detail
IDENTIFIER_KINDS = [
    ("INV-{d5}", ["Invoice {id} was paid by bank transfer on {date}.", "Payment for invoice {id} arrived on {date}.",
                  "{id}: invoice settled in full on {date}."],
     ["When was invoice {id} paid?", "Has {id} been settled yet?", "payment date for {id}"]),
    ("TCK-{d4}", ["Support ticket {id} is about a failed password reset for {who}.",
                  "Ticket {id} reports that {who} cannot reset a password.",
                  "{who} opened {id} because the password reset email never came."],
     ["What is ticket {id} about?", "Who raised {id} and why?", "summary of support ticket {id}"]),
    ("ORD-{d5}", ["Order {id} shipped to {city} with a tracking number from DHL.",
                  "Customer order {id} left the warehouse bound for {city}.",
                  "{id} was dispatched to {city} yesterday."],
     ["Where is order {id} going?", "Has {id} shipped?", "refund order {id}"]),
    ("SKU {d6}", ["{id} is the 500 ml stainless steel water bottle, {v} in stock.",
                  "Stock count for {id} (steel bottle, 500 ml): {v} units.",
                  "We have {v} of the steel flask, item {id}."],
     ["How many of {id} are left?", "stock level of {id}", "Is {id} available?"]),
    ("db-{d2}.eu-west", ["Host {id} is the primary replica for the payments database.",
                          "{id} runs the payments Postgres primary.",
                          "The payments primary lives on {id}."],
     ["What runs on {id}?", "Which service uses host {id}?", "role of {id}"]),
    ("E{d4}", ["Error code {id} means the upstream gateway timed out after 30 seconds.",
               "{id} is raised when the gateway does not answer within 30 s.",
               "When you see {id}, the upstream timed out."],
     ["What does error {id} mean?", "meaning of {id}", "Why would a request fail with {id}?"]),
    ("v{d1}.{d2}.{d1b}", ["Release {id} fixed the memory leak in the exporter.",
                         "The exporter leak was fixed in version {id}.",
                         "Changelog for {id}: exporter no longer leaks memory."],
      ["What changed in {id}?", "Which bug did release {id} fix?", "{id} release notes"]),
    ("LH{d4}", ["Flight {id} to {city} departs from gate B{v}.", "The {city} flight {id} boards at gate B{v}.",
                "{id} ({city}) is at gate B{v} today."],
     ["Which gate does {id} leave from?", "Where do I board flight {id}?", "gate for {id}"]),
    ("PR #{d4}", ["{id} adds retry with backoff to the webhook sender.",
                  "Pull request {id} makes webhooks retry with exponential backoff.",
                  "Review requested on {id}: webhook retries."],
     ["What does {id} change?", "Which feature is in {id}?", "status of {id}"]),
    ("ACCT-{d6}", ["Account {id} belongs to {who} and is on the enterprise plan.",
                   "{who}'s account {id} was upgraded to enterprise.",
                   "{id}: enterprise customer, owner {who}."],
     ["Who owns account {id}?", "What plan is {id} on?", "account {id} details"]),
]
CITIES = ["Lyon", "Porto", "Gdansk", "Bergen", "Tallinn", "Graz", "Utrecht", "Bilbao", "Turin", "Cork"]
WHO = ["Marta Silva", "Ken Ito", "Ada Novak", "Luis Ortega", "Sara Berg", "Tom Hale", "Ines Roth", "Omar Aziz"]


def _digits(rng: random.Random, n: int) -> str:
    while True:
        s = "".join(rng.choice("0123456789") for _ in range(n))
        if len(set(s)) == n or n == 1:
            return s


def _swap_two(s: str, rng: random.Random) -> str:
    """``s`` with two distinct digits swapped (a near-miss identifier)."""
    spots = [i for i, c in enumerate(s) if c.isdigit()]
    while True:
        i, j = rng.sample(spots, 2)
        if s[i] != s[j]:
            chars = list(s)
            chars[i], chars[j] = chars[j], chars[i]
            return "".join(chars)


def _identifier(pattern: str, rng: random.Random) -> str:
    return pattern.format(d1=rng.randint(1, 9), d1b=rng.randint(10, 99), d2=_digits(rng, 2), d4=_digits(rng, 4),
                          d5=_digits(rng, 5), d6=_digits(rng, 6))


def build_identifiers(rng: random.Random) -> dict[str, object]:
    memories, questions = [], []
    n = 0
    for pattern, facts, asks in IDENTIFIER_KINDS:
        for _ in range(4):
            ident = _identifier(pattern, rng)
            twin = _swap_two(ident, rng)
            detail = {"date": f"{rng.randint(1, 28)} {rng.choice(['March', 'April', 'May', 'June'])}",
                      "who": rng.choice(WHO), "city": rng.choice(CITIES), "v": rng.randint(2, 90)}
            # the twin says the same thing of another identifier: only the identifier tells them apart
            phrasing = rng.choice(facts)
            memories.append({"key": f"id-{n:02d}", "text": phrasing.format(id=ident, **detail),
                             "namespace": ["ops"]})
            memories.append({"key": f"twin-{n:02d}", "text": rng.choice(facts).format(id=twin, **detail),
                             "namespace": ["ops"]})
            questions.append({"question": rng.choice(asks).format(id=ident), "answer": f"id-{n:02d}"})
            n += 1
    rng.shuffle(memories)
    return {"name": "identifiers", "memories": memories, "questions": questions}


# -- names ------------------------------------------------------------------------------
# pairs of near-miss names: each gets a fact on the same topics
NAME_PAIRS = [
    ("Okafor", "Okonkwo"), ("Jansen", "Janssen"), ("Kowalski", "Kowalczyk"), ("Haddad", "Hadid"),
    ("Nguyen", "Nguema"), ("Petrov", "Petrova"), ("Lindqvist", "Lindgren"), ("Moreau", "Moreno"),
    ("Acme Labs", "Acme Logistics"), ("Northwind Bank", "Northwind Travel"), ("Bluefin Capital", "Bluefin Analytics"),
    ("Dr. Achebe", "Dr. Achterberg"), ("Rasmussen", "Rasmusen"), ("Schmidt", "Schmitt"), ("Fischer", "Fisher"),
    ("Yamamoto", "Yamada"), ("Castillo", "Castell"), ("Oyelaran", "Oyelowo"), ("Brennan", "Brannigan"),
    ("Vasquez", "Velasquez"),
]
NAME_TOPICS = [
    (["{n} ordered {v} for the team offsite.", "For the offsite, {n} placed an order for {v}.",
      "{n} asked us to send {v} to the offsite venue."],
     ["pizza and lemonade", "a box of pastries", "sandwich platters", "sushi trays", "tacos", "fruit baskets"],
     ["What did {n} order for the offsite?", "Which food is {n} getting for the team event?",
      "Remind me what {n} wanted delivered to the offsite", "catering order from {n}",
      "For the offsite, what is {n} having sent over?"]),
    (["The contract with {n} renews in {v}.", "{n}'s contract is up for renewal in {v}.",
      "Renewal of the {n} agreement is due in {v}."],
     ["January", "April", "July", "October", "December", "August"],
     ["When does the {n} contract renew?", "What month is {n}'s renewal?", "{n} renewal date",
      "Is the {n} agreement up for renewal soon?", "In which month do we renegotiate with {n}?"]),
    (["{n} prefers to be contacted on {v}.", "Reach {n} on {v}, not by phone.", "{n} only answers on {v}."],
     ["Slack", "email", "Signal", "Microsoft Teams", "WhatsApp", "LinkedIn"],
     ["How should we get in touch with {n}?", "What's the best channel to reach {n}?",
      "I need to message {n}; which app?", "preferred contact method for {n}", "Can I phone {n}?"]),
]


def build_names(rng: random.Random) -> dict[str, object]:
    memories, questions = [], []
    for p, pair in enumerate(NAME_PAIRS):
        for t, (facts, values, asks) in enumerate(NAME_TOPICS):
            picked = rng.sample(values, 2)
            for side, name in enumerate(pair):
                key = f"n{p:02d}-{side}-t{t}"
                memories.append({"key": key, "text": rng.choice(facts).format(n=name, v=picked[side]),
                                 "namespace": ["crm"]})
            # ask about one side of the pair, on two of the three topics
            if t != p % 3:
                side = rng.randint(0, 1)
                questions.append({"question": rng.choice(asks).format(n=pair[side]),
                                  "answer": f"n{p:02d}-{side}-t{t}"})
    rng.shuffle(memories)
    return {"name": "names", "memories": memories, "questions": questions}


# -- temporal -----------------------------------------------------------------------------
# (subject, old fact, current fact, question, question about the past)
TEMPORAL = [
    ("address", "Dana lives at 14 Rose Street in Leeds.", "Dana moved to 3 Mill Lane in York.",
     "What is Dana's home address?", "Where did Dana live back then?"),
    ("phone", "Ravi's phone number is 0161 555 0101.", "Ravi changed his number to 0161 555 0199.",
     "What number should I call to reach Ravi?", "What was Ravi's old number?"),
    ("plan", "The Kessler account is on the starter plan.", "The Kessler account upgraded to the business plan.",
     "Which plan is the Kessler account on?", "What plan was Kessler on before?"),
    ("manager", "Mia reports to Jorge in the data team.", "Mia now reports to Aylin after the reorg.",
     "Who is Mia's manager?", "Who did Mia report to earlier?"),
    ("diet", "Pavel eats everything, no restrictions.", "Pavel went vegan this year.",
     "Does Pavel have dietary restrictions?", "What did Pavel eat previously?"),
    ("price", "The pro tier costs 20 dollars a month.", "The pro tier price went up to 24 dollars a month.",
     "How much is the pro tier?", "What did the pro tier cost at the time?"),
    ("office", "Our Berlin office is on Torstrasse.", "The Berlin office relocated to Kopenicker Strasse.",
     "Where is the Berlin office?", "Where was the Berlin office located earlier?"),
    ("oncall", "This week's on-call engineer is Farah.", "On-call duty passed to Hugo for the new week.",
     "Who is on call?", "Who was on call that week?"),
    ("status", "Incident 4411 is being investigated.", "Incident 4411 is resolved; root cause was a bad deploy.",
     "What's the state of incident 4411?", "What was incident 4411's status then?"),
    ("car", "Lotte drives a grey Volvo estate.", "Lotte sold the Volvo and bought a green Kia EV.",
     "What car does Lotte drive?", "What did Lotte drive before?"),
    ("title", "Chen is a senior engineer.", "Chen was promoted to engineering manager.",
     "What is Chen's job title?", "What was Chen's role originally?"),
    ("deadline", "The audit report is due on 30 April.", "The audit deadline was pushed to 15 May.",
     "When is the audit report due?", "What was the original audit due date?"),
    ("school", "Noah's daughter attends Hillside Primary.", "Noah's daughter switched to Riverside Academy.",
     "Which school does Noah's daughter go to?", "Where did Noah's daughter study before?"),
    ("bank", "Salaries are paid from the account at Fjord Bank.", "Payroll moved to Harbor Credit Union.",
     "Which bank pays salaries?", "Where did payroll come from earlier?"),
    ("relationship", "Ines is engaged to Tomas.", "Ines and Tomas got married in June.",
     "Is Ines married?", "What was Ines's relationship status before June?"),
    ("region", "The app's database runs in us-east-1.", "The database was migrated to eu-central-1.",
     "In which region is the database hosted?", "Where was the database hosted before the migration?"),
    ("vendor", "We buy laptops from Dell.", "Laptop purchasing switched to Lenovo.",
     "Who is our laptop supplier?", "Which vendor supplied laptops previously?"),
    ("hours", "The support desk is open 9 to 5 on weekdays.", "The support desk now runs around the clock.",
     "What are the support desk's hours?", "When was support open before?"),
    ("language", "The backend is written in Ruby.", "The backend was rewritten in Kotlin.",
     "What language is the backend in?", "What was the backend written in at first?"),
    ("weight", "Milo the dog weighs 12 kilos.", "Milo put on weight and is 15 kilos now.",
     "How heavy is Milo?", "What did Milo weigh before?"),
    ("goal", "The quarterly target is 200 new customers.", "The quarterly target was cut to 150 new customers.",
     "What is the quarterly customer target?", "What was the target originally?"),
    ("email", "Greta's work email is greta@oldco.example.", "Greta's email is now greta.h@newco.example.",
     "What is Greta's email address?", "What email did Greta use before?"),
    ("medication", "Sam takes 50 mg of sertraline daily.", "Sam's sertraline dose increased to 100 mg.",
     "What dose of sertraline does Sam take?", "What was Sam's previous dose?"),
    ("team size", "The platform team has six engineers.", "The platform team grew to nine engineers.",
     "How many engineers are on the platform team?", "How big was the platform team before?"),
]


# a current fact about a neighbouring subject for each: same topic, another person or thing
TEMPORAL_NEIGHBOURS = {'address': 'Dina lives at 14 Rose Court in Leeds.',
    'phone': "Ravi's desk extension is 0101.", 'plan': 'The Kestrel account is on the business plan.',
    'manager': 'Max reports to Jorge in the data team.',
    'diet': "Pavel's flatmate is vegetarian.", 'price': 'The team tier costs 40 dollars a month.',
    'office': 'Our Munich office is on Leopoldstrasse.',
    'oncall': "Next week's backup on-call is Farah.", 'status': 'Incident 4412 is being investigated.',
    'car': "Lotte's brother drives a grey Volvo estate.", 'title': "Chen's manager is a senior director.", 'deadline': 'The tax report is due on 30 April.',
    'school': "Noah's son attends Hillside Primary.", 'bank': 'Expenses are reimbursed from the Fjord Bank card.',
    'relationship': "Ines's sister is engaged to Tomas's cousin.", 'region': "The app's backups are stored in us-east-2.", 'vendor': 'We buy monitors from Dell.',
    'hours': 'The sales desk is open 9 to 5 on weekdays.',
    'language': 'The mobile app is written in Swift.',
    'weight': 'Milo the cat weighs 5 kilos.',
    'goal': 'The yearly target is 800 new customers.',
    'email': "Greta's personal email is greta.h@mail.example.", 'medication': "Sam's partner takes 50 mg of sertraline daily.", 'team size': 'The data team has six engineers.'}


def build_temporal(rng: random.Random) -> dict[str, object]:
    memories, questions = [], []
    old_from, new_from = "2024-01-10T09:00:00+00:00", "2025-03-01T09:00:00+00:00"
    past = "2024-06-01T00:00:00+00:00"
    for i, (subject, old, new, ask_now, ask_then) in enumerate(TEMPORAL):
        memories.append({"key": f"t{i:02d}-near", "text": TEMPORAL_NEIGHBOURS[subject], "namespace": ["facts"],
                         "valid_from": old_from})
        memories.append({"key": f"t{i:02d}-old", "text": old, "namespace": ["facts"], "valid_from": old_from,
                         "superseded_by": f"t{i:02d}-new"})
        memories.append({"key": f"t{i:02d}-new", "text": new, "namespace": ["facts"], "valid_from": new_from})
        questions.append({"question": ask_now, "answer": f"t{i:02d}-new"})
        if i % 2 == 0 or i < 16:
            questions.append({"question": ask_then, "answer": f"t{i:02d}-old", "as_of": past})
    rng.shuffle(memories)
    return {"name": "temporal", "memories": memories, "questions": questions}


# -- conversations ----------------------------------------------------------------------
# long notes (several sentences) and chat turns; each question asks for one buried detail
CONVERSATIONS = [
    ("user: We're planning the team retreat for late May. I'd like somewhere within two hours of Munich, "
     "ideally by a lake, with rooms for eighteen people. Budget is about 9,000 euros including meals. "
     "Two people are vegetarian and one needs a ground-floor room.",
     ["How many people are coming to the retreat?", "What is the budget for the May offsite?",
      "Does anyone need an accessible room at the retreat?"]),
    ("assistant: I compared the three quotes for the office move. Movers Plus is cheapest at 3,200 but cannot "
     "start before the 14th. Swift Relocations charges 3,900 and includes packing. Atlas wants 4,100 and "
     "offers insurance for the servers.",
     ["Which moving company includes packing?", "Which mover is the cheapest option?"]),
    ("user: My son has his first piano recital on Saturday at 4 pm at the music school on Elm Road. "
     "He's playing a short Clementi sonatina and is very nervous. Can you remind me to bring the camera "
     "and flowers for his teacher, Mrs. Duval?",
     ["What piece is the boy performing?", "Who is the piano teacher?", "Where is the recital?"]),
    ("Meeting notes, infra sync: the Kafka cluster hit 85% disk on Monday. We agreed to shorten retention "
     "from 7 days to 3 for the clickstream topic. Priya owns the change and will also add a disk alert at "
     "75%. Next sync is Thursday.",
     ["What retention did we pick for clickstream?", "Who is responsible for the Kafka change?",
      "At what threshold will the disk alarm fire?"]),
    ("user: I went to the doctor about the knee. She thinks it's a mild meniscus tear, not a ligament. "
     "No running for six weeks, physio twice a week, and swimming is fine. I have a follow-up scan on "
     "the 9th of next month.",
     ["What did the doctor diagnose?", "Which exercise is allowed during recovery?",
      "When is the next scan for the knee?"]),
    ("assistant: Here's the summary of the lease. The rent is fixed for two years, then rises with "
     "inflation capped at 3%. Pets are allowed with a 500 deposit. The notice period is three months, "
     "and the landlord handles the boiler service.",
     ["Can tenants keep animals in the flat?", "How much notice is needed to leave the lease?",
      "Who maintains the heating?"]),
    ("user: For the wedding, the caterer needs final numbers by the 1st. We have 112 confirmed guests, "
     "9 children's meals, and 14 vegetarian mains. The cake is lemon and elderflower from Bea's Bakery.",
     ["What flavour is the wedding cake?", "How many guests have confirmed?", "How many kids' meals?"]),
    ("Postmortem draft: checkout errors started at 14:02 after a config push set the payment timeout to "
     "500 ms instead of 5 s. Error rate peaked at 31%. Rollback finished at 14:40. Action item: validate "
     "timeouts in CI.",
     ["What caused the checkout outage?", "When was the rollback completed?",
      "How high did the error rate get?"]),
    ("user: I'm comparing two job offers. Lumen pays 92k with four days in the office; Brightwave pays "
     "85k, fully remote, with a bigger training budget. I care most about not commuting.",
     ["Which offer is fully remote?", "What salary does Lumen offer?"]),
    ("assistant: Your tax documents checklist: P60 from your employer, the interest statement from the "
     "savings account, receipts for the home office desk, and the letter about the pension top-up. The "
     "filing deadline is 31 January.",
     ["What is the deadline for filing taxes?", "Which employer form is on the checklist?"]),
    ("user: The dishwasher is leaking from the bottom left corner again. The repair person last time "
     "said it might be the sump seal. The model is a Bosch SMS46, bought in 2019, warranty expired.",
     ["Which part might be causing the dishwasher leak?", "What model is the dishwasher?"]),
    ("Standup notes: Leo finished the CSV export. Maya is blocked on API keys from the partner. Ahmed "
     "is fixing the flaky login test. The demo to the client moved to Wednesday 3 pm.",
     ["Who is fixing the unreliable test?", "Who is waiting on credentials?", "When is the client demo?"]),
    ("user: Recipe I liked: roast the squash at 200 degrees for 35 minutes, blend with a tin of coconut "
     "milk, ginger and a spoon of red curry paste, then finish with lime juice.",
     ["How long does the squash roast?", "Which kind of curry paste goes in the soup?"]),
    ("assistant: The vet said Biscuit's bloodwork is normal, but she is slightly overweight. Reduce dry "
     "food to 60 grams a day and add a second walk. Next vaccination is due in March.",
     ["How much dry food should Biscuit get?", "When are the next shots for Biscuit?"]),
    ("user: Our router keeps dropping the 5 GHz network every evening around 8. The ISP technician "
     "suggested moving to channel 36 and updating the firmware; the model is a TP-Link Archer AX55.",
     ["Which wifi channel did the technician suggest?", "When does the wireless drop out?"]),
    ("Quarterly review notes: revenue grew 14% to 2.3 million, churn fell to 2.1%, and the sales team "
     "missed the enterprise target by four deals. Hiring is frozen until July except for support.",
     ["What was the churn rate this quarter?", "Until when is hiring paused?"]),
    ("user: I booked the dentist for a cleaning on Tuesday at 8:15. The practice moved to the second "
     "floor above the pharmacy. They asked me to bring the new insurance card.",
     ["Where is the dental practice now?", "What should I bring to the dentist?"]),
    ("assistant: For your trip to Lisbon: the hotel is in Alfama, check-in after 3 pm, breakfast "
     "included. The airport transfer is booked for 11:20 on Friday. Tram 28 stops outside.",
     ["What time is the airport pickup?", "Which neighbourhood is the hotel in?"]),
]
# distractor notes on the same subjects with other details
CONVERSATION_NOISE = [
    "user: Last year's retreat was in the Black Forest, fourteen people, and it rained the whole time.",
    "assistant: The office move checklist has 40 items; the first is labelling the boxes.",
    "user: My daughter's dance show is on Sunday; she is doing a tap routine.",
    "Meeting notes, data sync: the warehouse queries are slow on Mondays; Tom will add an index.",
    "user: My shoulder felt stiff after gym; I think I need to stretch more.",
    "assistant: Summary of the car lease: 36 months, 10,000 km a year, and winter tyres included.",
    "user: For my sister's birthday we ordered a chocolate cake from the corner shop.",
    "Postmortem draft: search was slow for ten minutes after a cache flush; no errors.",
    "user: A recruiter called about a role at Northwind, but I did not apply.",
    "assistant: Reminder: the car's MOT is due in April and the insurance letter arrived.",
    "user: The washing machine makes a loud noise during the spin cycle.",
    "Standup notes: the design review moved to Friday; nobody is blocked.",
    "user: I tried a lentil stew recipe but it came out too salty.",
    "assistant: The cat's vaccination record was uploaded to the portal.",
    "user: The printer lost its wifi connection again this morning.",
    "Quarterly planning: we will hire two support engineers and a designer in July.",
    "user: My optician appointment is on Monday at 9.",
    "assistant: For your trip to Porto: the hotel has a rooftop pool and parking.",
]


def build_conversations(rng: random.Random) -> dict[str, object]:
    memories, questions = [], []
    for i, (text, asks) in enumerate(CONVERSATIONS):
        memories.append({"key": f"c{i:02d}", "text": text, "namespace": ["chat", f"s{i % 4}"], "kind": "episodic"})
        for q in asks:
            questions.append({"question": q, "answer": f"c{i:02d}"})
    for i, text in enumerate(CONVERSATION_NOISE):
        memories.append({"key": f"noise-{i:02d}", "text": text, "namespace": ["chat", f"s{i % 4}"],
                         "kind": "episodic"})
    rng.shuffle(memories)
    return {"name": "conversations", "memories": memories, "questions": questions}


BUILDERS = {"paraphrase": build_paraphrase, "identifiers": build_identifiers, "names": build_names,
            "temporal": build_temporal, "conversations": build_conversations}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, build in BUILDERS.items():
        data = build(random.Random(f"sutram-{name}"))
        (OUT / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"{name}: {len(data['memories'])} memories, {len(data['questions'])} questions")


if __name__ == "__main__":
    main()
