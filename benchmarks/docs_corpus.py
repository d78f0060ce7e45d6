"""A small labelled corpus for the documents benchmark: an original text (written for this
project, dedicated to the public domain, CC0) of 24 sections about an imaginary island, and
questions that each one section answers.

Questions are paraphrased, not copied: most share one or two words with their section, as a
person's question does, so word search alone cannot find every answer by rote.
"""

from __future__ import annotations

SECTIONS: dict[str, str] = {
    "geography": "Marrow Island lies forty kilometres off the northern cape. Its single "
    "mountain, Grey Tor, rises to 612 metres, and three rivers drain its western slopes into "
    "the Sound.",
    "climate": "Winters on the island are mild but windy; gales from the south-west arrive in "
    "November. Snow falls perhaps twice a decade, and summer days rarely pass 24 degrees.",
    "ferry": "The ferry leaves the mainland harbour at seven each morning and returns at six in "
    "the evening. The crossing takes ninety minutes, and bicycles travel free of charge.",
    "lighthouse": "The lighthouse on Gull Point was built in 1852 from granite quarried on the "
    "island. Its lamp was electrified in 1931 and the last keeper left in 1987.",
    "school": "The island school teaches forty children between five and sixteen. Older pupils "
    "board on the mainland during the week and come home on the Friday ferry.",
    "fishing": "Lobster and crab are caught in pots set along the rocky east shore. The season "
    "closes from January to March so that the stock can recover.",
    "wool": "Sheep graze the high moor, and their wool is spun at the mill in Ashby. The mill "
    "dyes yarn with lichen and heather, giving the island tweed its brown and purple flecks.",
    "festival": "Each August the island holds a music festival in the harbour square. Fiddlers "
    "come from the mainland, and the week ends with a regatta of rowing boats.",
    "church": "St Brigid's chapel dates from the twelfth century and is the oldest building on "
    "the island. Its bell, cast in Bristol, was hung in 1740.",
    "birds": "Puffins nest on the northern cliffs from April to July. Gannets, razorbills and "
    "a colony of Arctic terns can be watched from the hide above Seal Bay.",
    "seals": "Grey seals haul out on the skerries at Seal Bay, and pups are born there in "
    "October. Visitors are asked to keep fifty metres away during pupping.",
    "water": "Drinking water comes from a reservoir below Grey Tor and is treated at a small "
    "works beside the school. In dry summers residents are asked not to use hoses.",
    "power": "Electricity comes from three wind turbines on Blackhill, with a diesel generator "
    "kept for calm weeks. A cable to the mainland was laid in 2009.",
    "doctor": "A nurse lives on the island and a doctor visits every Tuesday. Emergencies are "
    "flown to the mainland hospital by helicopter from the field behind the pub.",
    "pub": "The Anchor is the island's only pub. It serves food until eight, hosts a quiz on "
    "Thursdays and keeps the key to the community hall.",
    "shop": "The community shop opens every day but Sunday. It doubles as the post office and "
    "takes deliveries from the mainland on the Monday and Thursday ferries.",
    "walking": "A coastal path of twenty-two kilometres circles the island. The climb to the "
    "summit of Grey Tor takes about two hours from Ashby and is marked with cairns.",
    "history": "Norse settlers farmed the island in the ninth century; their longhouse "
    "foundations can still be seen at Skaill. The island passed to the Scottish crown in 1266.",
    "shipwreck": "In 1893 the barque Hesperus struck the Horn Rocks in fog. Islanders rowed out "
    "and saved all nineteen crew; the ship's figurehead now hangs in the pub.",
    "farming": "Crofts on the eastern lowland grow potatoes, oats and kale. Most crofters also "
    "keep a few cattle, which are shipped to market in the autumn sales.",
    "camping": "Wild camping is allowed above the high-tide line except at Seal Bay. The "
    "campsite in Ashby has showers, and fires on the beach must be kept small.",
    "internet": "Broadband reached the island by radio link in 2015. Mobile signal is good in "
    "Ashby but patchy on the west coast, where the mountain blocks the mast.",
    "language": "Gaelic was spoken by most islanders until the 1950s. Place names such as "
    "Skaill and Blackhill mix Norse, Gaelic and Scots roots.",
    "population": "About 310 people live on the island, most of them in Ashby. The number fell "
    "to 190 in the 1970s and has grown since the ferry became daily.",
}

QUESTIONS: tuple[tuple[str, str], ...] = (
    ("How tall is the highest peak?", "geography"),
    ("When do the autumn storms start?", "climate"),
    ("What time does the boat leave in the morning?", "ferry"),
    ("Can I bring my bike on the crossing for free?", "ferry"),
    ("When did the last lighthouse keeper leave?", "lighthouse"),
    ("Where do teenagers go to school during the week?", "school"),
    ("When is lobster fishing closed?", "fishing"),
    ("Why does the tweed have purple flecks?", "wool"),
    ("What happens at the end of the summer music week?", "festival"),
    ("Which is the oldest building?", "church"),
    ("When can puffins be seen?", "birds"),
    ("How far should visitors stay from seal pups?", "seals"),
    ("Where does the drinking water come from?", "water"),
    ("How is electricity produced?", "power"),
    ("On which day does the doctor visit?", "doctor"),
    ("Until what time does the pub serve food?", "pub"),
    ("Is the post office open on Sundays?", "shop"),
    ("How long is the path around the coast?", "walking"),
    ("Who were the first farmers on the island?", "history"),
    ("How many sailors were rescued from the wreck?", "shipwreck"),
    ("What crops grow on the crofts?", "farming"),
    ("Where is camping not allowed?", "camping"),
    ("Why is the mobile signal poor in the west?", "internet"),
    ("Which language did islanders speak before the 1950s?", "language"),
    ("How many people live there?", "population"),
)
