"""Sample rows for `embedq demo`: a small learning community with profiles, courses, lessons,
posts and comments, some of it in Chinese, and searches that should find particular rows.

Two lessons are long (over 3,000 words, built from per-topic notes below) so the demo shows
chunking. `insert_sample` writes everything in one transaction, one INSERT per table.
"""

from __future__ import annotations

import json
from typing import Any

# --- profiles -----------------------------------------------------------------------------------

PROFILES: list[dict[str, Any]] = [
    {
        "display_name": "Maya Chen",
        "bio": "Home cook and food writer in Chengdu. I test every recipe three times before "
        "I post it, and I am slowly fermenting my way through my grandmother's notebook.",
        "interests": ["cooking", "Sichuan cuisine", "fermentation", "food writing"],
        "avatar_url": "https://example.com/avatars/maya.png",
    },
    {
        "display_name": "Daniel Okafor",
        "bio": "Backend engineer. Python and PostgreSQL by day, reading query plans for fun "
        "by night. Maintainer of a couple of small open-source libraries.",
        "interests": ["python", "postgresql", "performance", "open source"],
        "avatar_url": "https://example.com/avatars/daniel.png",
    },
    {
        "display_name": "Sofia Rossi",
        "bio": "Landscape photographer based in the Dolomites. Early mornings, cold fingers, "
        "and a tripod that has seen better days. I teach small field workshops.",
        "interests": ["photography", "hiking", "mountains", "film cameras"],
        "avatar_url": None,
    },
    {
        "display_name": "李伟",
        "bio": "在北京教了十二年对外汉语。喜欢书法和喝茶，周末常去胡同里拍照。"
        "相信每个人都能学好中文，关键是每天开口说。",
        "interests": ["汉语教学", "书法", "茶", "摄影"],
        "avatar_url": "https://example.com/avatars/liwei.png",
    },
    {
        "display_name": "Priya Nair",
        "bio": "Former auditor, now writing about personal finance for people who hate "
        "spreadsheets. Index funds, boring budgets and sleeping well at night.",
        "interests": ["personal finance", "budgeting", "index investing"],
        "avatar_url": None,
    },
    {
        "display_name": "Tom Becker",
        "bio": "Yoga teacher and physiotherapy student. Most of my students sit at a desk "
        "all day, so I teach short routines for stiff backs, necks and hips.",
        "interests": ["yoga", "mobility", "meditation", "running"],
        "avatar_url": "https://example.com/avatars/tom.png",
    },
    {
        "display_name": "Aiko Tanaka",
        "bio": "Machine learning engineer working on search: multilingual text embeddings, "
        "vector indexes and evaluation. Previously NLP research in Kyoto.",
        "interests": ["machine learning", "NLP", "embeddings", "semantic search"],
        "avatar_url": "https://example.com/avatars/aiko.png",
    },
    {
        "display_name": "Grace Miller",
        "bio": "Allotment gardener and balcony grower. Compost evangelist. I keep two "
        "beehives and far too many tomato varieties.",
        "interests": ["gardening", "composting", "beekeeping", "seed saving"],
        "avatar_url": None,
    },
    {
        "display_name": "Carlos Mendes",
        "bio": "Session guitarist and teacher from Lisbon. I explain music theory with the "
        "guitar in hand, not on the blackboard.",
        "interests": ["guitar", "music theory", "jazz", "songwriting"],
        "avatar_url": "https://example.com/avatars/carlos.png",
    },
]

# --- long lessons, built from notes -------------------------------------------------------------

_PLAN_NODES: list[dict[str, str]] = [
    {
        "name": "Seq Scan",
        "what": "A sequential scan reads every page of the table from start to end and checks "
        "each row against the filter.",
        "when": "The planner picks it when the table is small, when the filter matches a large "
        "share of the rows, or when no index fits the condition.",
        "watch": "A large 'Rows Removed by Filter' figure next to a small result is the classic "
        "sign that an index is missing or cannot be used.",
        "fix": "Add an index that matches the filter, make sure the condition does not wrap the "
        "column in a function, and check that the column types on both sides agree.",
    },
    {
        "name": "Index Scan",
        "what": "An index scan walks the B-tree to the first matching entry and then fetches "
        "each matching row from the table in index order.",
        "when": "It wins when the condition is selective and only a small fraction of the table "
        "qualifies, or when the index order also satisfies an ORDER BY.",
        "watch": "If the actual row count is much higher than the estimate, the random heap "
        "fetches can make it slower than the sequential scan it replaced.",
        "fix": "Refresh statistics with ANALYZE, raise the statistics target for skewed "
        "columns, and consider a covering index to avoid the heap visits.",
    },
    {
        "name": "Index Only Scan",
        "what": "An index-only scan answers the query from the index alone, because every "
        "column it needs is stored in the index entries.",
        "when": "It appears when the index covers the selected columns and most pages of the "
        "table are marked all-visible in the visibility map.",
        "watch": "Look at 'Heap Fetches': a high number means the visibility map is stale and "
        "the scan is quietly visiting the table after all.",
        "fix": "Let autovacuum keep up on the table, or run VACUUM after bulk loads, so that "
        "the visibility map stays current.",
    },
    {
        "name": "Bitmap Heap Scan",
        "what": "A bitmap scan first collects the locations of matching rows from one or more "
        "indexes, sorts them by page, and then reads each page once.",
        "when": "The planner likes it for medium selectivity and for combining several indexes "
        "with BitmapAnd or BitmapOr.",
        "watch": "A 'lossy' bitmap or a long 'Recheck Cond' line means work_mem was too small "
        "to remember individual rows, so whole pages were rechecked.",
        "fix": "Give the session more work_mem for the query, or narrow the condition so fewer pages qualify.",
    },
    {
        "name": "Nested Loop",
        "what": "A nested loop join runs the inner side once for every row of the outer side.",
        "when": "It is ideal when the outer side is tiny and the inner side can use an index on the join key.",
        "watch": "The 'loops' figure multiplies everything below it: a cheap inner scan executed "
        "two hundred thousand times is no longer cheap.",
        "fix": "Fix the row estimate of the outer side, or add the missing index on the inner "
        "join column so that each loop is a quick lookup.",
    },
    {
        "name": "Hash Join",
        "what": "A hash join builds a hash table from the smaller input and probes it with each row of the larger one.",
        "when": "It is the usual choice for joining two large sets on an equality condition without a useful order.",
        "watch": "'Batches' greater than one means the hash table did not fit in memory and "
        "spilled to disk in several passes.",
        "fix": "Raise work_mem or hash_mem_multiplier for the query, or filter the build side "
        "earlier so the table is smaller.",
    },
    {
        "name": "Merge Join",
        "what": "A merge join walks two inputs that are sorted on the join key side by side, like closing a zip.",
        "when": "It shows up when both inputs already arrive sorted, for example from indexes, "
        "or when the result must be ordered by the join key anyway.",
        "watch": "An explicit Sort below a merge join can cost more than the join itself.",
        "fix": "Provide indexes that deliver the order, or let the planner choose a hash join "
        "by checking whether the sort is really needed.",
    },
    {
        "name": "Sort",
        "what": "A sort node orders its input, in memory when it fits and on disk when it does not.",
        "when": "It appears for ORDER BY, for merge joins, for DISTINCT and for some window functions.",
        "watch": "'Sort Method: external merge Disk' tells you the sort spilled to temporary "
        "files, which is often the slowest step in a report query.",
        "fix": "Add an index in the requested order, sort fewer rows by filtering first, or "
        "raise work_mem for that one query.",
    },
    {
        "name": "Aggregate",
        "what": "Aggregate nodes compute counts, sums and averages, either by hashing groups or "
        "by reading sorted groups one after another.",
        "when": "HashAggregate is chosen when the groups fit in memory; GroupAggregate when the "
        "input is already sorted by the grouping columns.",
        "watch": "A group estimate that is far off the actual number of groups often comes from "
        "correlated columns the planner assumes are independent.",
        "fix": "Create extended statistics on the correlated columns with CREATE STATISTICS so "
        "the planner can estimate the number of groups.",
    },
    {
        "name": "Limit",
        "what": "A limit node stops asking its input for rows once it has enough.",
        "when": "It is paired with ORDER BY for top-N queries and pagination.",
        "watch": "A limit on top of an index scan is fast only if matching rows appear early in "
        "the index order; otherwise the scan reads far more rows than it returns.",
        "fix": "Use keyset pagination on an indexed column instead of large OFFSET values, and "
        "index the filter and sort columns together.",
    },
    {
        "name": "Gather",
        "what": "A gather node collects rows from parallel workers that each scan part of the table.",
        "when": "Parallel plans appear for large scans and aggregates when "
        "max_parallel_workers_per_gather allows them.",
        "watch": "Compare 'Workers Planned' with 'Workers Launched': when the server is busy "
        "fewer workers start and the query runs slower than planned.",
        "fix": "Check the parallel worker limits, and remember that parallelism helps big "
        "analytic scans far more than short transactional queries.",
    },
    {
        "name": "CTE Scan",
        "what": "A CTE scan reads the result of a WITH query that was computed once and stored.",
        "when": "Since PostgreSQL 12 simple CTEs are inlined; a CTE is materialized when it is "
        "referenced twice or marked MATERIALIZED.",
        "watch": "A materialized CTE is an optimization fence: conditions from the outer query are not pushed into it.",
        "fix": "Write NOT MATERIALIZED when you want the outer filter pushed down, or move the "
        "filter inside the WITH query yourself.",
    },
]


def _explain_lesson() -> str:
    intro = [
        "EXPLAIN shows the plan PostgreSQL intends to run; EXPLAIN ANALYZE runs the query and "
        "adds what really happened. Reading that output is the single most useful skill for "
        "making slow queries fast, and it is less mysterious than it looks. A plan is a tree: "
        "each node takes rows from the nodes below it and hands rows to the node above. The "
        "root is printed first, the leaves are indented the furthest, and execution starts at "
        "the leaves.",
        "Every node line carries two sets of numbers. The estimate in the first parentheses "
        "gives the startup cost, the total cost, the expected number of rows and their width. "
        "The actual figures in the second parentheses give the time to the first row, the time "
        "to the last row, the real number of rows and the number of loops. Times and rows are "
        "per loop, so multiply them by the loop count before you compare nodes.",
        "Always run EXPLAIN (ANALYZE, BUFFERS) on a realistic copy of the data. BUFFERS adds how "
        "many pages each node found in shared memory and how many it had to read, which tells "
        "you whether a query is slow because of work or because of disk. Remember that ANALYZE "
        "executes the statement: wrap data-changing statements in a transaction and roll it back.",
        "The habit that pays off most is comparing estimated rows with actual rows, node by "
        "node, from the leaves upwards. Where the two first diverge by a factor of ten or more "
        "you have usually found the root cause; everything above that node was planned for a "
        "world that does not exist. The sections below walk through the nodes you will meet "
        "most often, what each one does, and what to look for.",
    ]
    sections = []
    for index, node in enumerate(_PLAN_NODES, start=1):
        name = node["name"]
        sections.append(
            f"{index}. {name}\n\n"
            f"{node['what']} {node['when']}\n\n"
            f"What to look for: {node['watch']} When a {name} node is the slowest part of the "
            f"plan, first check whether its row estimate is close to the actual rows. If the "
            f"estimate is wrong, the planner chose the {name} for the wrong reasons, and fixing "
            f"the statistics often changes the whole plan without touching the query. If the "
            f"estimate is right, the node is doing honest work and the question becomes whether "
            f"that work can be avoided.\n\n"
            f"How to fix it: {node['fix']} After each change, run the same EXPLAIN (ANALYZE, "
            f"BUFFERS) again and compare the total time, the buffers read and the shape of the "
            f"plan. Change one thing at a time, keep the old plan next to the new one, and write "
            f"down which change made the difference, so that the next person who meets a slow "
            f"{name} in this database does not have to start from scratch."
        )
    outro = [
        "A worked example ties this together. Suppose a report query joins orders to customers "
        "and filters on the order date. The plan shows a Hash Join over a Seq Scan of orders "
        "that removes nine million rows by filter to keep forty thousand. The estimate at the "
        "scan says two hundred rows, the actual says forty thousand. That mismatch explains why "
        "the planner expected a cheap plan, and the Seq Scan explains why it is not. An index on "
        "the order date turns the scan into a Bitmap Heap Scan, the estimate improves after "
        "ANALYZE, and the report drops from eleven seconds to three hundred milliseconds.",
        "Finally, keep a few rules in mind. Optimize the query that is slow in production, not "
        "the one that looks slow in a textbook. Measure with realistic data and realistic "
        "parameters, because a plan for a rare value can differ completely from the plan for a "
        "common one. Prefer fixing estimates over forcing plans. And when you share a plan with "
        "colleagues, include the query, the full EXPLAIN (ANALYZE, BUFFERS) output and the "
        "PostgreSQL version, because every one of those details changes the answer.",
    ]
    return "\n\n".join(intro + sections + outro)


_LIGHT: list[dict[str, str]] = [
    {
        "name": "Blue hour",
        "look": "Before sunrise and after sunset the sky fills with soft, even, cool light and "
        "shadows almost disappear.",
        "subjects": "Lakes, towns with their first lights, snowfields and any scene where calm "
        "colour matters more than drama.",
        "settings": "Expect exposures of several seconds at ISO 100; a tripod and a two-second timer are essential.",
        "plan": "Arrive forty minutes before sunrise, with a head torch, and have the composition "
        "set before the sky starts to glow.",
        "mistake": "Leaving too early: the deepest blue often arrives ten minutes after most "
        "photographers have packed up.",
    },
    {
        "name": "Golden hour",
        "look": "When the sun is low, its light is warm, directional and long, and it rakes "
        "across the land to reveal every ridge and texture.",
        "subjects": "Mountain faces, dunes, fields of grass and anything with texture that side light can carve out.",
        "settings": "Meter for the highlights and let the shadows fall dark; bracket if the sun is in the frame.",
        "plan": "Check the sun's direction with a planning app the evening before, so you know which "
        "faces of the mountain will catch the first light.",
        "mistake": "Shooting only towards the sun and forgetting to turn around, where the warm "
        "light falls on the landscape behind you.",
    },
    {
        "name": "Midday sun",
        "look": "High sun gives hard, short shadows, bright highlights and flat colour in open landscapes.",
        "subjects": "Forests, canyons and streets with strong graphic shadows, or black and "
        "white images built on contrast.",
        "settings": "Use a polarizer to deepen the sky and cut glare on leaves and water, and "
        "keep an eye on the histogram's right edge.",
        "plan": "Look for shade and strong shapes, such as the shadow of a bridge on a river or light"
        " falling through a gap in a canyon wall.",
        "mistake": "Giving up on the day: midday is the time to scout locations for tomorrow's sunrise.",
    },
    {
        "name": "Overcast",
        "look": "A full cloud cover turns the sky into a giant softbox with gentle shadows and saturated greens.",
        "subjects": "Waterfalls, forest interiors, flowers and intimate details without a sky in the frame.",
        "settings": "Slow shutter speeds come easily; a half-second exposure gives water a "
        "silky texture without filters.",
        "plan": "Overcast days are ideal for forest walks, because the soft light removes the hot "
        "spots that make woodland pictures look messy.",
        "mistake": "Including a blank white sky that the camera renders as a dull grey band "
        "across the top of the picture.",
    },
    {
        "name": "Fog and mist",
        "look": "Fog simplifies a scene, hides clutter and separates layers by distance, so "
        "the nearest trees are dark and the far ones fade away.",
        "subjects": "Tree lines, rolling hills, a lone boat or a path that disappears into the grey.",
        "settings": "Add one or two stops of exposure compensation, because the meter will try "
        "to turn the bright fog into middle grey.",
        "plan": "Valley fog forms best on calm, clear nights after rain, so watch the forecast for "
        "those conditions and pick a viewpoint above the valley floor.",
        "mistake": "Arriving after the fog lifts: check the forecast for clear nights after "
        "rain, when valley fog is most likely.",
    },
    {
        "name": "Storm light",
        "look": "Breaks in storm clouds throw spotlights of sun onto the land under a dark sky, "
        "and the contrast can be spectacular.",
        "subjects": "Wide valleys, coastlines and mountain ridges where a single lit area can become the subject.",
        "settings": "Keep the camera ready on the tripod and wait; the best light may last only a few seconds.",
        "plan": "Follow the radar and position yourself so the storm passes beside you rather than "
        "over you, with the sun behind your back.",
        "mistake": "Standing on exposed ridges when lightning is near. No photograph is worth that risk.",
    },
    {
        "name": "Backlight",
        "look": "With the sun behind the subject, edges glow, leaves turn translucent and dust or spray lights up.",
        "subjects": "Grasses, spider webs, hikers on a ridge, spray from waves and autumn leaves.",
        "settings": "Shade the lens with your hand to avoid flare, and expose so that the glowing "
        "rim keeps its detail.",
        "plan": "Low sun behind a subject works best early and late in the day, so plan backlit "
        "scenes for the first and last hour of light.",
        "mistake": "Letting the silhouette merge with the background, which turns a clear shape "
        "into a confusing dark mass.",
    },
    {
        "name": "Side light",
        "look": "Light from the side creates shadows that run across the frame and give a flat picture depth.",
        "subjects": "Rock formations, snow drifts, sand ripples and old stone walls.",
        "settings": "Position yourself so the light comes from ninety degrees, then walk a few "
        "steps to change how the shadows fall.",
        "plan": "Study a map for valleys and ridges that run north to south, which catch side light "
        "at both ends of the day.",
        "mistake": "Choosing a high viewpoint that flattens the very texture the side light reveals.",
    },
    {
        "name": "Snow",
        "look": "Snow reflects light into the shadows and turns everything bright, clean and "
        "quiet, with a blue tint in the shade.",
        "subjects": "Minimal scenes, tracks across a field, trees heavy with snow and mountain huts.",
        "settings": "Add exposure compensation so the snow stays white, and keep spare "
        "batteries warm inside your jacket.",
        "plan": "Go out during or just after snowfall, when branches are still loaded and the fields are untouched.",
        "mistake": "Walking through the scene before photographing it and leaving footprints across the foreground.",
    },
    {
        "name": "Night and stars",
        "look": "On a moonless night away from towns the Milky Way stands out clearly and the "
        "landscape is lit only by starlight.",
        "subjects": "Mountain silhouettes, old trees and lakes that reflect the sky.",
        "settings": "Use the widest aperture, ISO between 3200 and 6400 and an exposure short "
        "enough to keep the stars as points.",
        "plan": "Check the moon phase and a light pollution map, and choose a night around the new "
        "moon far from the nearest town.",
        "mistake": "Focusing at the infinity mark without checking; focus on a bright star "
        "with live view magnified instead.",
    },
    {
        "name": "Moonlight",
        "look": "A bright moon lights the landscape like a very dim, cool sun and lets long "
        "exposures record colour the eye cannot see.",
        "subjects": "Snowy peaks, beaches and any scene that looks flat at night without some light on the land.",
        "settings": "Try thirty seconds at f/5.6 and ISO 800 as a starting point and adjust from the histogram.",
        "plan": "The days around full moon are best, and a moon low in the sky gives softer, more "
        "directional light on the land.",
        "mistake": "Including the full moon itself, which becomes a white blob in an exposure made for the land.",
    },
    {
        "name": "Rain",
        "look": "Rain darkens rock and soil, deepens colours and fills the air with texture, "
        "and puddles become mirrors.",
        "subjects": "Streets with reflections, forest floors, moss and close-ups of drops on leaves.",
        "settings": "Protect the camera with a cover, keep a lens cloth dry in a bag and use a "
        "lens hood to keep drops off the glass.",
        "plan": "Watch for the end of a shower, when the clouds break and the wet landscape catches "
        "the returning light.",
        "mistake": "Staying home: some of the richest colour of the year appears in the first hour after heavy rain.",
    },
]


def _light_lesson() -> str:
    intro = [
        "Light is the raw material of landscape photography. The same valley can look dull at "
        "noon and unforgettable twenty minutes after sunrise, and the difference has nothing to "
        "do with the camera. This lesson is a field guide: for each kind of light you will meet "
        "outdoors it describes what the light does, which subjects suit it, the settings that "
        "usually work and the mistake that most often spoils the picture.",
        "Read it once at home, then carry the ideas with you. Before every outing, check the "
        "forecast, the time of sunrise and sunset and the direction of the light at your "
        "location. Plan for the light you expect, but stay flexible: the most memorable "
        "pictures often come from conditions nobody predicted.",
    ]
    sections = []
    for index, light in enumerate(_LIGHT, start=1):
        name = light["name"]
        lower = name.lower()
        subjects = light["subjects"][0].lower() + light["subjects"][1:]
        sections.append(
            f"{index}. {name}\n\n"
            f"{light['look']} Good subjects: {subjects}\n\n"
            f"Camera settings: {light['settings']} Whatever the light, work slowly. Walk the "
            f"location before you set up, look at the scene through the viewfinder from several "
            f"heights, and decide what the picture is about before you decide how to expose it. "
            f"In {lower} the light changes quickly, so take a safe frame early and then refine "
            f"the composition while the conditions last.\n\n"
            f"Planning: {light['plan']} Give yourself time on location: the conditions that "
            f"make {lower} special rarely announce themselves, and the photographer who is "
            f"already set up when they arrive gets the picture.\n\n"
            f"Common mistake: {light['mistake']} When you review your pictures from a morning "
            f"in {lower}, sort them by how the light behaved rather than by location, and note "
            f"which ones worked. After a season of notes you will know which places come alive "
            f"in {lower}, and you will plan your next trips around the light instead of around "
            f"the map."
        )
    outro = [
        "A simple exercise brings all of this together. Pick one location within walking "
        "distance of your home and photograph it in as many of these kinds of light as you can "
        "over the next three months. Keep the camera position the same and only vary the time "
        "and the weather. When you lay the pictures side by side, you will see more clearly than "
        "in any book how much the light, and not the place, makes the photograph.",
    ]
    return "\n\n".join(intro + sections + outro)


# --- courses and lessons ------------------------------------------------------------------------

COURSES: list[dict[str, Any]] = [
    {
        "title": "家常川菜入门：在家做出麻辣鲜香",
        "description": "从郫县豆瓣、花椒和干辣椒这些基础调料讲起，一步步学会麻婆豆腐、回锅肉、"
        "鱼香肉丝和干煸四季豆。每道菜都讲清楚火候、下料顺序和常见失误，"
        "让你在普通家庭厨房里也能做出地道的川味。",
        "category": "烹饪",
        "tags": ["川菜", "家常菜", "麻辣", "中式烹饪"],
        "requirements": "一口炒锅或平底锅，能买到郫县豆瓣酱和花椒即可，不需要任何烹饪基础。",
        "learning_objectives": "认识川菜常用调料；掌握炒红油和爆香的火候；独立做出四道经典家常川菜。",
        "price_cents": 3900,
        "lessons": [
            {
                "title": "认识川菜的基本调料",
                "description": "豆瓣酱、花椒、干辣椒、泡椒和醋，川菜的味道从这里开始。",
                "content": "川菜常说“一菜一格，百菜百味”，但家常菜用到的调料其实不多。"
                "郫县豆瓣是灵魂，要选发酵时间长、颜色红褐的，用之前最好剁细。"
                "花椒分红花椒和青花椒，红花椒香气浓，青花椒麻味清爽，炒菜前用小火焙一下再碾碎，香味会翻倍。"
                "干辣椒负责香和色，辣度其实不高，剪成段后去掉一部分籽。"
                "\n\n泡椒和泡姜带来酸香，是鱼香味的关键。醋要用香醋或保宁醋，起锅前沿锅边淋入。"
                "最后别忘了糖：川菜里的糖不是为了甜，而是为了让麻辣更圆润。"
                "建议第一次做菜前把调料都准备好，放在小碗里，下锅时才不会手忙脚乱。",
            },
            {
                "title": "麻婆豆腐：麻、辣、烫、香、酥、嫩",
                "description": "一道菜练会炒红油、勾芡和收汁，新手最容易失败的地方都在这里。",
                "content": "麻婆豆腐讲究麻、辣、烫、香、酥、嫩六个字。豆腐选嫩一点的卤水豆腐，切成两厘米的方块，"
                "放进加了盐的开水里煮两分钟，这样豆腐不容易碎，也能去掉豆腥味。"
                "\n\n牛肉末用少许油炒到酥香出油，盛出备用。锅里留底油，小火下剁细的豆瓣酱，慢慢炒出红油，"
                "这一步千万不能急，火大了豆瓣会发苦。接着加入豆豉、辣椒面和姜蒜末炒香，倒入一碗清水或高汤。"
                "\n\n水开后轻轻推入豆腐，用锅铲背推动而不是翻炒，中火煮三四分钟让豆腐入味。"
                "勾芡要分三次：每次淋一点水淀粉，轻轻晃锅，让汤汁慢慢裹住豆腐。"
                "最后放回牛肉末，撒上现磨的花椒面和蒜苗，趁热上桌。"
                "\n\n第一次做最常见的问题有三个：豆瓣没炒透，味道发生；一次勾芡太多，汤汁结成团；"
                "花椒面放得太早，麻味被煮散了。记住这三点，你的麻婆豆腐就成功了一大半。",
            },
            {
                "title": "回锅肉与鱼香肉丝",
                "description": "一道讲究肉片的灯盏窝，一道讲究酸甜咸辣的平衡。",
                "content": "回锅肉要用二刀肉，冷水下锅煮到筷子能扎透，放凉后切成薄片。"
                "锅里少放油，下肉片小火煸炒，直到肉片微微卷起，像一个个小灯盏。"
                "然后下豆瓣酱和甜面酱炒出颜色，最后放蒜苗大火翻炒几下就出锅。"
                "\n\n鱼香肉丝里没有鱼，鱼香味来自泡椒、葱姜蒜和糖醋的配合。"
                "先把糖、醋、酱油、淀粉和少许水调成碗汁，肉丝用盐和淀粉抓匀上浆。"
                "热锅凉油滑散肉丝，下泡椒末炒出红油，再放木耳丝和胡萝卜丝，最后倒入碗汁，"
                "大火收汁，让每一根肉丝都挂满亮红的芡汁。",
            },
            {
                "title": "干煸四季豆和火候控制",
                "description": "不用油炸也能煸出虎皮，学会看火候比记住时间更重要。",
                "content": "干煸的关键是让豆角的水分慢慢蒸发，表皮起皱，颜色变成虎皮一样的斑点。"
                "家里不方便油炸，可以用中小火干煸十分钟左右，期间不停翻动。"
                "豆角煸好后盛出，锅里放一点油，下肉末、芽菜和干辣椒段炒香，再倒回豆角一起翻炒。"
                "\n\n判断火候要用眼睛和耳朵：油面微微起波纹就是中火，下料时声音清脆而不是噼啪乱响。"
                "火太大，外面焦了里面还生；火太小，豆角会出水变软。多做几次，你就能凭感觉掌握。",
            },
        ],
    },
    {
        "title": "Python for Data Wrangling",
        "description": "Load, clean, reshape and summarise messy real-world data with Python and "
        "pandas, and turn one-off notebook code into small, testable pipelines.",
        "category": "Programming",
        "tags": ["python", "pandas", "data cleaning", "csv"],
        "requirements": "Basic Python: variables, loops and functions. Python 3.11 or newer "
        "installed on your computer.",
        "learning_objectives": "Read CSV, JSON and Excel files reliably; clean text and dates; "
        "group, pivot and join tables; package the steps as a reusable script.",
        "price_cents": 4900,
        "lessons": [
            {
                "title": "Reading CSV and JSON files without surprises",
                "description": "Encodings, separators, dtypes and the dates that pandas guesses wrong.",
                "content": "Most data cleaning problems start at the moment a file is read. Always "
                "pass the encoding explicitly, check the separator, and tell pandas which columns "
                "are dates with parse_dates instead of letting it guess. Read identifiers such as "
                "postal codes as strings so leading zeros survive.\n\nFor JSON, decide whether the "
                "file is one document or one record per line. json_normalize flattens nested "
                "objects into columns with dotted names, which is usually what you want for "
                "analysis. After loading, look at df.info() and df.head() before doing anything "
                "else: five seconds of looking saves an hour of debugging.",
            },
            {
                "title": "Cleaning messy text columns",
                "description": "Whitespace, case, Unicode and the many spellings of the same city.",
                "content": "Text columns collect every kind of inconsistency: trailing spaces, "
                "mixed case, non-breaking spaces and different Unicode forms of the same letter. "
                "Normalise them in one function: strip, collapse internal whitespace, apply "
                "Unicode NFC, and lower-case only where case carries no meaning.\n\nFor values "
                "typed by people, such as city names, build a small mapping table of known "
                "variants and apply it with replace. Keep the mapping in a CSV file next to the "
                "code so that colleagues can extend it without touching Python.",
            },
            {
                "title": "Grouping and aggregating with pandas",
                "description": "groupby, agg, pivot_table and the difference between transform and apply.",
                "content": "groupby splits a table into groups, applies a function to each and "
                "combines the results. Use named aggregations such as "
                "df.groupby('region').agg(total=('amount', 'sum'), orders=('id', 'count')) so the "
                "output columns have clear names.\n\ntransform returns a result with the same "
                "shape as the input, which makes it perfect for adding a group total or a rank "
                "next to every row. pivot_table reshapes long data into a wide report; pass "
                "fill_value=0 and margins=True for a table you can hand to a manager.",
            },
            {
                "title": "Writing reusable data pipelines",
                "description": "From notebook cells to functions, tests and a command-line script.",
                "content": "A notebook is a good place to explore and a bad place to run the same "
                "cleaning every Monday. Move each step into a function that takes a DataFrame and "
                "returns a DataFrame, then chain them with pipe. Each function can now be tested "
                "with a tiny hand-written table.\n\nAdd a small command-line entry point with "
                "argparse that reads the input path and writes the output path, log how many "
                "rows each step removed, and fail loudly when a required column is missing.",
            },
        ],
    },
    {
        "title": "PostgreSQL Indexing and Query Tuning",
        "description": "Understand how PostgreSQL finds rows, read query plans with confidence "
        "and fix slow queries with the right index instead of guesswork.",
        "category": "Databases",
        "tags": ["postgresql", "sql", "indexes", "performance", "explain"],
        "requirements": "Comfortable writing SELECT queries with joins. Access to a PostgreSQL "
        "14+ database where you can create tables.",
        "learning_objectives": "Explain how B-tree indexes work; read EXPLAIN ANALYZE output; "
        "choose partial, expression and covering indexes; keep statistics and vacuum healthy.",
        "price_cents": 5900,
        "lessons": [
            {
                "title": "How B-tree indexes work",
                "description": "Pages, keys and why column order in a multicolumn index matters.",
                "content": "A B-tree index keeps keys sorted in a balanced tree of pages. Finding "
                "one key takes a handful of page reads even in a table with billions of rows, and "
                "because the leaves are linked in order, range conditions and ORDER BY can be "
                "answered by walking along them.\n\nIn a multicolumn index the order of columns "
                "matters: an index on (customer_id, created_at) serves queries that filter on "
                "customer_id, or on customer_id and a date range, but not queries that filter on "
                "created_at alone. Put equality columns first and range columns last.",
            },
            {
                "title": "Reading EXPLAIN ANALYZE output",
                "description": "A node-by-node field guide to query plans: what each node does, "
                "what to look for and how to fix it.",
                "content": _explain_lesson(),
            },
            {
                "title": "Partial, expression and covering indexes",
                "description": "Smaller, sharper indexes for the queries you actually run.",
                "content": "A partial index only contains rows that match its WHERE clause. If "
                "nine out of ten orders are archived and every query asks for open orders, "
                "CREATE INDEX ON orders (created_at) WHERE status = 'open' is a fraction of the "
                "size and faster to maintain.\n\nAn expression index stores the result of a "
                "function, so a query on lower(email) can use an index on lower(email). A "
                "covering index adds extra columns with INCLUDE so that an index-only scan can "
                "answer the query without visiting the table at all.",
            },
            {
                "title": "Vacuum, bloat and statistics",
                "description": "Why autovacuum matters for speed, not only for disk space.",
                "content": "Every UPDATE in PostgreSQL writes a new row version and leaves the old "
                "one behind until VACUUM removes it. When autovacuum cannot keep up, tables and "
                "indexes bloat, index-only scans stop working and queries slow down.\n\n"
                "ANALYZE samples each table and stores statistics about the values in every "
                "column. The planner's estimates, and therefore its choice of plan, are only as "
                "good as those statistics. Tune autovacuum per table for hot tables instead of "
                "running manual VACUUM jobs from cron.",
            },
        ],
    },
    {
        "title": "Landscape Photography: Light and Composition",
        "description": "Plan shoots around the light, compose with intention and process RAW "
        "files into natural, striking landscape images.",
        "category": "Photography",
        "tags": ["photography", "landscape", "composition", "lightroom"],
        "requirements": "Any camera with manual exposure controls and a tripod. No editing experience needed.",
        "learning_objectives": "Control exposure in difficult light; plan shoots for sunrise, "
        "fog and night; compose with foreground, layers and lines; edit RAW files with restraint.",
        "price_cents": 6900,
        "lessons": [
            {
                "title": "The exposure triangle in the field",
                "description": "Aperture, shutter speed and ISO when the light will not wait.",
                "content": "Aperture controls depth of field, shutter speed controls motion and ISO "
                "controls noise. In landscape work the usual starting point is f/8 to f/11 for "
                "sharpness from front to back, ISO 100 for clean files and whatever shutter "
                "speed the light then requires, which is why the tripod matters.\n\nLearn to read "
                "the histogram instead of trusting the screen. Keep the highlights off the right "
                "edge, and when the scene's range is too wide, bracket three exposures and blend "
                "them later.",
            },
            {
                "title": "A field guide to natural light",
                "description": "Twelve kinds of outdoor light, from blue hour to rain, and how to photograph each one.",
                "content": _light_lesson(),
            },
            {
                "title": "Composition beyond the rule of thirds",
                "description": "Foregrounds, layers, leading lines and knowing what to leave out.",
                "content": "Strong landscape pictures usually have a clear subject, a foreground "
                "that leads into the frame and a sense of depth built from layers. Get low to make "
                "rocks, flowers or patterns in the sand part of the story, and use lines such as "
                "rivers, paths and ridges to guide the eye.\n\nThe rule of thirds is a starting "
                "point, not a law. Symmetry works for reflections, a centred subject works for "
                "calm scenes, and the most important skill is simplifying: walk until the "
                "distracting branch or the bright sign is out of the frame.",
            },
            {
                "title": "Editing RAW files without overdoing it",
                "description": "A calm editing workflow for natural colour and believable contrast.",
                "content": "Start with the basics: straighten the horizon, set the white balance and "
                "correct the exposure. Then recover highlights, lift shadows gently and add "
                "contrast with the tone curve rather than the clarity slider.\n\nUse local "
                "adjustments to guide the eye, a little brighter where you want the viewer to "
                "look and a little darker at the edges. Step away for ten minutes before you "
                "export: saturation that looked right at first almost always looks too strong "
                "later.",
            },
        ],
    },
    {
        "title": "Mandarin Chinese for Absolute Beginners",
        "description": "Start speaking Mandarin from day one: pinyin and tones, everyday phrases, "
        "numbers and the conversations you need when travelling in China.",
        "category": "Languages",
        "tags": ["mandarin", "chinese", "pinyin", "beginner"],
        "requirements": "No prior knowledge. Fifteen minutes a day and the courage to speak out loud.",
        "learning_objectives": "Pronounce the four tones; introduce yourself; use numbers, dates "
        "and times; order food and ask for directions.",
        "price_cents": 4500,
        "lessons": [
            {
                "title": "Pinyin and the four tones",
                "description": "How Mandarin sounds are written in Latin letters, and why tone changes meaning.",
                "content": "Pinyin writes Mandarin pronunciation with Latin letters plus tone marks. "
                "The same syllable with a different tone is a different word: mā 妈 means mother, "
                "má 麻 means hemp or numb, mǎ 马 means horse and mà 骂 means to scold.\n\nPractise "
                "tones in pairs rather than alone, because that is how you will hear them in real "
                "speech. Record yourself reading 你好 (nǐ hǎo) and 谢谢 (xièxie) and compare with a "
                "native recording. Note that two third tones in a row change: nǐ hǎo is spoken "
                "as ní hǎo.",
            },
            {
                "title": "Greetings and introducing yourself",
                "description": "你好, 我叫…, and the first five minutes of any conversation.",
                "content": "The basic greeting is 你好 (nǐ hǎo); to a teacher or an older person use "
                "您好 (nín hǎo). Introduce yourself with 我叫… (wǒ jiào…, my name is…) and ask "
                "someone's name with 你叫什么名字？ (nǐ jiào shénme míngzi?).\n\nTo say where you "
                "are from, use 我是…人 (wǒ shì … rén): 我是英国人 means I am British. Finish with "
                "很高兴认识你 (hěn gāoxìng rènshi nǐ), nice to meet you.",
            },
            {
                "title": "Numbers, dates and telling time",
                "description": "Count to a hundred, say today's date and ask what time it is.",
                "content": "Numbers from one to ten are 一 二 三 四 五 六 七 八 九 十. Larger numbers "
                "are built logically: 十一 is eleven, 二十 is twenty and 二十一 is twenty-one.\n\n"
                "Dates go from large to small: year, month, day. 2024年5月8日 is the eighth of May "
                "2024. To ask the time, say 现在几点？ (xiànzài jǐ diǎn?); the answer 三点半 means "
                "half past three.",
            },
            {
                "title": "Ordering food at a restaurant",
                "description": "Read a simple menu, order dishes and ask for the bill.",
                "content": "Call the waiter with 服务员 (fúwùyuán) and ask for the menu with "
                "请给我菜单 (qǐng gěi wǒ càidān). Order with 我要… (wǒ yào…, I would like…), for "
                "example 我要一碗牛肉面 for a bowl of beef noodles.\n\nIf you do not eat spicy food, "
                "say 不要辣 (bú yào là). When you are finished, ask for the bill with 买单 (mǎidān). "
                "In many places you will pay by scanning a QR code with your phone.",
            },
        ],
    },
    {
        "title": "Personal Finance: Budgeting and Index Investing",
        "description": "Build a budget you can actually keep, get out of expensive debt and "
        "invest for the long term with low-cost index funds.",
        "category": "Finance",
        "tags": ["budgeting", "saving", "index funds", "investing"],
        "requirements": "Your last three months of bank statements. No investing experience needed.",
        "learning_objectives": "Track spending and set a realistic savings rate; build an "
        "emergency fund; pay down debt in the right order; choose a simple index fund portfolio.",
        "price_cents": 2900,
        "lessons": [
            {
                "title": "Building a budget you can keep",
                "description": "Start from what you really spend, then decide how much of each paycheck to save.",
                "content": "Most budgets fail because they describe the person we wish we were. "
                "Start instead from three months of real spending, sorted into a few broad "
                "categories: housing, food, transport, fun and everything else.\n\nThen decide on "
                "a savings rate. Ten to fifteen percent of take-home pay is a good first target, "
                "and twenty percent or more gets you to financial independence much sooner. Pay "
                "yourself first: move the savings on payday with a standing order, and spend what "
                "is left without guilt.",
            },
            {
                "title": "Emergency funds and paying off debt",
                "description": "How big an emergency fund should be, and the avalanche and snowball methods.",
                "content": "An emergency fund of three to six months of essential expenses turns a "
                "lost job or a broken boiler into an inconvenience instead of a crisis. Keep it "
                "in an easy-access savings account, not in investments.\n\nFor debts, the "
                "avalanche method pays the highest interest rate first and saves the most money; "
                "the snowball method pays the smallest balance first and gives quick wins. Either "
                "beats paying the minimum on everything.",
            },
            {
                "title": "Index funds and asset allocation",
                "description": "Why low-cost, broad index funds beat most stock pickers.",
                "content": "An index fund buys every company in a market index, so you own a slice "
                "of the whole market instead of betting on a few companies. Fees matter more than "
                "almost anything else over decades: a one percent yearly fee can eat a quarter of "
                "your final balance.\n\nChoose a mix of stock and bond funds that matches how long "
                "you can leave the money invested, then rebalance once a year. The hardest part "
                "is doing nothing when markets fall.",
            },
        ],
    },
    {
        "title": "Yoga for Desk Workers",
        "description": "Short, gentle routines that undo the stiffness of long days at a desk: "
        "neck, shoulders, lower back and hips.",
        "category": "Health & Fitness",
        "tags": ["yoga", "mobility", "back pain", "stretching"],
        "requirements": "A mat or a carpeted floor and ten minutes. Suitable for complete beginners.",
        "learning_objectives": "Release neck and shoulder tension; open tight hips and hamstrings; "
        "ease lower back pain from sitting; build a daily ten-minute habit.",
        "price_cents": 1900,
        "lessons": [
            {
                "title": "Neck and shoulder release",
                "description": "Five minutes for the tension that builds up behind a screen.",
                "content": "Sit tall with your feet flat on the floor. Drop your right ear towards "
                "your right shoulder and breathe slowly for five breaths, then switch sides. Roll "
                "your shoulders back ten times and finish with thread the needle on all fours to "
                "open the upper back.\n\nMove slowly and never force a stretch. Mild tension is "
                "good; sharp pain, tingling or numbness means stop.",
            },
            {
                "title": "Hip openers for long sitting",
                "description": "Low lunge, pigeon and a supported figure four.",
                "content": "Hours of sitting shorten the hip flexors, which then pull on the lower "
                "back. A low lunge with the back knee on a cushion stretches them gently; hold for "
                "six slow breaths on each side.\n\nFollow with a supported figure four: lie on "
                "your back, cross one ankle over the opposite knee and draw both legs in. It "
                "releases the deep hip muscles without strain and is a kinder alternative to "
                "pigeon pose for stiff beginners.",
            },
            {
                "title": "A ten-minute evening routine for a stiff back",
                "description": "Cat-cow, child's pose, twists and legs up the wall.",
                "content": "Begin on all fours with ten rounds of cat-cow, moving with the breath. "
                "Sit back into child's pose with the arms long for one minute, then lie down for a "
                "gentle supine twist on each side.\n\nFinish with legs up the wall for three "
                "minutes. It calms the nervous system and relieves the lower back after a long "
                "day of sitting. Done every evening, these ten minutes make a noticeable "
                "difference within two weeks.",
            },
        ],
    },
    {
        "title": "Practical Machine Learning with scikit-learn",
        "description": "Train, evaluate and ship machine learning models on tabular and text "
        "data, avoiding the mistakes that make offline results look better than reality.",
        "category": "Data Science",
        "tags": ["machine learning", "scikit-learn", "python", "embeddings"],
        "requirements": "Python and basic pandas. Some statistics helps but is not required.",
        "learning_objectives": "Split data without leakage; choose metrics that match the "
        "problem; compare tree ensembles; build semantic search with text embeddings.",
        "price_cents": 7900,
        "lessons": [
            {
                "title": "Train/test splits and data leakage",
                "description": "The most common reason a model that scored 0.95 fails in production.",
                "content": "Leakage happens when information from the test set, or from the "
                "future, sneaks into training. Fitting a scaler on the whole data set before "
                "splitting is a classic example; so is a random split of time-series data.\n\n"
                "Put every preprocessing step inside a Pipeline so it is fitted on the training "
                "folds only, split by time when the data has an order, and split by customer when "
                "one customer contributes many rows.",
            },
            {
                "title": "Choosing the right metric",
                "description": "Accuracy, precision, recall, ROC AUC and when each one misleads.",
                "content": "Accuracy is meaningless when one class is rare: a fraud model that "
                "always says 'not fraud' is 99.9 percent accurate and useless. Look at precision "
                "and recall, pick a threshold that matches the cost of each kind of mistake, and "
                "report the confusion matrix next to any single number.\n\nFor ranking problems "
                "such as search, use metrics that look at the top of the list, like recall at ten "
                "or normalised discounted cumulative gain.",
            },
            {
                "title": "Gradient boosting versus random forests",
                "description": "Two strong defaults for tabular data and how to tune them.",
                "content": "Random forests average many deep trees trained on random subsets; they "
                "are hard to overfit and need little tuning. Gradient boosting adds shallow trees "
                "one at a time, each correcting the errors of the last, and usually wins on "
                "accuracy when tuned.\n\nStart with HistGradientBoostingClassifier, early "
                "stopping and a learning rate around 0.1, then tune the number of leaves and the "
                "minimum samples per leaf with cross-validation.",
            },
            {
                "title": "Text embeddings and semantic search",
                "description": "Turn sentences into vectors and find documents by meaning, in any language.",
                "content": "An embedding model maps a piece of text to a vector so that texts with "
                "similar meaning end up close together. Semantic search embeds every document "
                "once, embeds the query at search time and returns the nearest vectors by cosine "
                "similarity.\n\nMultilingual models such as multilingual-e5 place a Chinese "
                "sentence and its English translation near each other, so one index serves "
                "queries in many languages. Long documents are split into overlapping chunks "
                "before embedding, and a vector index such as HNSW in pgvector keeps search fast "
                "as the collection grows.",
            },
        ],
    },
    {
        "title": "Vegetable Gardening in Small Spaces",
        "description": "Grow tomatoes, herbs, salad and beans on a balcony, patio or "
        "windowsill, with containers, good compost and a little planning.",
        "category": "Home & Garden",
        "tags": ["gardening", "vegetables", "containers", "balcony"],
        "requirements": "A balcony, patio or sunny windowsill. A few pots and a bag of compost.",
        "learning_objectives": "Choose containers and soil; pick crops for your light; water and "
        "feed correctly; deal with common pests without chemicals.",
        "price_cents": 2500,
        "lessons": [
            {
                "title": "Containers and soil mixes",
                "description": "Bigger pots, better drainage and compost that does not compact.",
                "content": "Most container failures come from pots that are too small. Tomatoes "
                "and courgettes want at least thirty litres each; herbs and salad are happy in "
                "shallow troughs. Every container needs drainage holes.\n\nUse a peat-free "
                "multipurpose compost mixed with a fifth of garden compost or worm castings, and "
                "refresh the top few centimetres each spring.",
            },
            {
                "title": "What to grow on a balcony",
                "description": "Matching crops to the hours of sun you actually get.",
                "content": "Count the hours of direct sun your space receives in early summer. Six "
                "hours or more suits tomatoes, peppers and beans. Three to five hours is fine for "
                "salad leaves, chard, peas and most herbs. In shade, grow mint, parsley and "
                "rocket.\n\nChoose compact varieties bred for containers, and grow upwards with "
                "trellis and hanging baskets when floor space is short.",
            },
            {
                "title": "Watering, feeding and pests",
                "description": "The routine that keeps container plants productive all summer.",
                "content": "Containers dry out fast: check daily in summer by pushing a finger into "
                "the compost, and water deeply in the morning until it runs out of the bottom. "
                "Feed fruiting crops weekly with a tomato feed once the first flowers appear.\n\n"
                "Aphids are the most common pest; squash them by hand or spray with water, and "
                "attract ladybirds and hoverflies with flowers such as marigolds and alyssum.",
            },
        ],
    },
    {
        "title": "Music Theory for Guitarists",
        "description": "Learn the fretboard, scales, intervals and chord construction on the "
        "guitar, and understand why the progressions you play every day work.",
        "category": "Music",
        "tags": ["guitar", "music theory", "chords", "scales"],
        "requirements": "A guitar and the ability to play a few open chords.",
        "learning_objectives": "Name every note on the fretboard; play and understand the major "
        "scale; build triads and seventh chords; analyse and write chord progressions.",
        "price_cents": 3500,
        "lessons": [
            {
                "title": "Notes on the fretboard",
                "description": "A system for finding any note on any string in seconds.",
                "content": "Learn the natural notes on the low E and A strings first; together "
                "they give you the root of almost every barre chord. Remember that there is no "
                "sharp between B and C or between E and F.\n\nThen use octave shapes: two frets "
                "up and two strings across gives the same note an octave higher. Practise by "
                "naming one note a day and finding it on all six strings.",
            },
            {
                "title": "The major scale and intervals",
                "description": "Whole steps, half steps and the sound of each interval.",
                "content": "The major scale follows the pattern whole, whole, half, whole, whole, "
                "whole, half. On one string that means moving two frets, two frets, one fret and "
                "so on, which makes the pattern easy to see.\n\nIntervals name the distance "
                "between two notes. Learn to hear them with songs you know: a perfect fourth "
                "opens 'Here Comes the Bride', a perfect fifth opens the Star Wars theme.",
            },
            {
                "title": "Building chords from the scale",
                "description": "Stack thirds to get every chord in a key.",
                "content": "Take every other note of the major scale starting from any degree and "
                "you get the chords of the key. In C major that gives C, D minor, E minor, F, G, "
                "A minor and B diminished.\n\nAdd one more third and you get seventh chords: C "
                "major seven, D minor seven, G dominant seven. The dominant seven on the fifth "
                "degree creates the tension that pulls back home to the tonic.",
            },
            {
                "title": "Chord progressions that work",
                "description": "I–V–vi–IV, ii–V–I and the twelve-bar blues.",
                "content": "The I–V–vi–IV progression, C–G–Am–F in C major, carries hundreds of pop "
                "songs because it moves between stable and tense chords in a satisfying circle. "
                "The ii–V–I is the backbone of jazz, and the twelve-bar blues uses just I, IV and "
                "V.\n\nTry writing a verse over one progression and a chorus over another, and "
                "notice how starting the chorus on the IV chord gives an instant lift.",
            },
        ],
    },
]

# --- posts and comments -------------------------------------------------------------------------

POSTS: list[dict[str, Any]] = [
    {
        "author": "Maya Chen",
        "title": "My first batch of homemade chili oil",
        "body": "I finally made chili oil the way my grandmother did: three kinds of chili flakes, "
        "Sichuan peppercorns, star anise, a cinnamon stick and a bay leaf, with the oil poured "
        "in three stages at different temperatures. The first pour at about 200°C gives the "
        "toasty colour, the last pour at 120°C keeps the fresh chili aroma.\n\nIt took two tries: "
        "the first batch burned because I skipped the thermometer. Worth it though, it goes on "
        "noodles, dumplings and even fried eggs.",
        "view_count": 1840,
        "comments": [
            ("Grace Miller", "Could I use my own dried chillies from the garden for this?"),
            (
                "Maya Chen",
                "Absolutely! Dry them fully and grind them coarse, and mix a mild "
                "variety for colour with a hot one for heat.",
            ),
            ("李伟", "看起来很香！我们家做红油也是分三次泼油，最后一次加点白芝麻。"),
        ],
    },
    {
        "author": "Daniel Okafor",
        "title": "One partial index cut our API latency in half",
        "body": "Our jobs table has forty million rows but the API only ever asks for the few "
        "thousand that are still pending. The planner used the big index on status and read "
        "thousands of pages per request. A partial index on (priority, created_at) WHERE "
        "status = 'pending' is 2 MB instead of 900 MB, and p95 latency dropped from 180 ms to "
        "80 ms.\n\nLesson learned: index the rows you query, not the whole table.",
        "view_count": 5210,
        "comments": [
            ("Aiko Tanaka", "Did you have to change the queries so the planner picks the partial index?"),
            (
                "Daniel Okafor",
                "Only to make sure the WHERE clause matches exactly: status = "
                "'pending' as a literal, not a parameter compared with a generic plan.",
            ),
            ("Priya Nair", "Saving this for our team, we have the same problem with invoices."),
        ],
    },
    {
        "author": "Sofia Rossi",
        "title": "Five mornings of fog at the lake",
        "body": "I went back to the same lake five mornings in a row hoping for fog. Four times "
        "the sky was clear and the water flat and boring. On the fifth morning, after a cold "
        "clear night following rain, thick fog sat in the valley and the pines on the far "
        "shore faded into layers of grey.\n\nI shot at +1.3 exposure compensation so the fog "
        "stayed bright, and used a long lens to compress the layers. Patience is the most "
        "important piece of equipment.",
        "view_count": 960,
        "comments": [
            ("Tom Becker", "The fifth morning made up for the other four, beautiful."),
            ("李伟", "雾里的层次感太美了，请问用的是多少焦距？"),
            ("Sofia Rossi", "谢谢！用的是200毫米，光圈f/8。"),
        ],
    },
    {
        "author": "李伟",
        "title": "学中文最难的是声调吗？",
        "body": "很多学生告诉我，学中文最难的是声调。其实我觉得声调并不可怕，可怕的是不敢开口。"
        "我的建议是：每天花十分钟跟读录音，先模仿整句话的语调，再去注意每个字的声调。"
        "\n\n另外，两个三声连在一起时，第一个要变成二声，比如“你好”读作“ní hǎo”。"
        "这个规则记住了，很多常用词就自然了。大家学中文的时候还遇到过哪些困难？欢迎留言。",
        "view_count": 2330,
        "comments": [
            (
                "Carlos Mendes",
                "As a musician I found it helped to think of the tones as pitch "
                "contours, like a tiny melody for each word.",
            ),
            ("Aiko Tanaka", "对我来说最难的是听力，说得快的时候完全听不出声调。"),
            ("李伟", "听力需要大量输入，可以先从慢速的播客开始，每天坚持。"),
        ],
    },
    {
        "author": "Priya Nair",
        "title": "The 50/30/20 rule didn't work for me, here's what did",
        "body": "Every budgeting article recommends 50 percent needs, 30 percent wants and 20 "
        "percent savings. With London rent, my needs alone were 62 percent. Instead of feeling "
        "like a failure, I flipped it: I automated 15 percent into savings on payday, set a "
        "weekly spending allowance for everything else, and stopped tracking individual "
        "coffees.\n\nA year later I had six months of expenses saved and a growing index fund.",
        "view_count": 3120,
        "comments": [
            (
                "Daniel Okafor",
                "The weekly allowance idea is great. Monthly budgets always fell apart for me around day 20.",
            ),
            ("Maya Chen", "Did you count irregular things like gifts and travel as needs or wants?"),
            ("Priya Nair", "I give them their own sinking fund, a small fixed amount every month."),
        ],
    },
    {
        "author": "Tom Becker",
        "title": "Lower back pain after a long day at the desk",
        "body": "The question I get most often: why does my lower back hurt after sitting all "
        "day, even though I have a good chair? Usually the hips are the problem. Tight hip "
        "flexors tilt the pelvis and the lower back takes the strain.\n\nTry this for two "
        "weeks: stand up every forty-five minutes, do a low lunge for each leg at lunch and "
        "legs up the wall before bed. If the pain runs down your leg, see a physiotherapist.",
        "view_count": 4400,
        "comments": [
            (
                "Daniel Okafor",
                "Two weeks in and the afternoon ache is mostly gone. The timer reminder was the key for me.",
            ),
            ("Grace Miller", "Does gardening count as a break from sitting? I kneel a lot."),
            ("Tom Becker", "It does! Just use a kneeling pad and switch sides often."),
        ],
    },
    {
        "author": "Aiko Tanaka",
        "title": "Semantic search over our support tickets in three languages",
        "body": "We embedded two years of support tickets in English, Japanese and Chinese with "
        "a multilingual e5 model and stored the vectors in Postgres with pgvector. Agents now "
        "type a question in their own language and find similar tickets in any of the three, "
        "something our keyword search never managed.\n\nThe hard part was not the model but "
        "keeping vectors in sync when tickets are edited, and chunking very long email threads.",
        "view_count": 2875,
        "comments": [
            ("Daniel Okafor", "How did you keep the embeddings up to date, triggers or a nightly batch?"),
            (
                "Aiko Tanaka",
                "Triggers that queue a job per changed ticket, and a worker that "
                "re-embeds only when the text actually changed.",
            ),
        ],
    },
    {
        "author": "Grace Miller",
        "title": "Tomatoes on a north-facing balcony?",
        "body": "A friend asked whether she can grow tomatoes on her north-facing balcony. "
        "Honestly, it is hard: tomatoes want six or more hours of direct sun. But cherry "
        "tomatoes in a large pot against a bright wall can give a small crop, and everything "
        "else does well there: lettuce, rocket, parsley, mint and chard.\n\nPick the crops for "
        "the light you have and you will harvest far more than by fighting it.",
        "view_count": 640,
        "comments": [
            ("Maya Chen", "Mint on a shady balcony is a must, it keeps me in mojitos all summer."),
        ],
    },
    {
        "author": "Carlos Mendes",
        "title": "Why does every pop song use the same four chords?",
        "body": "I–V–vi–IV. In C major that is C, G, A minor and F, and you can sing a hundred hits "
        "over it. It works because it alternates between the stable tonic, the tense dominant "
        "and the bittersweet relative minor, and the IV chord leads naturally back to the "
        "start.\n\nTry playing the same four chords starting on A minor instead of C: same "
        "chords, a completely different, sadder mood.",
        "view_count": 3560,
        "comments": [
            ("Sofia Rossi", "Starting on the minor chord really does change everything, I just tried it."),
            ("李伟", "中文流行歌里也常用这个和弦进行，难怪听起来那么熟悉。"),
        ],
    },
    {
        "author": "Maya Chen",
        "title": "周末在家做了一锅红烧肉",
        "body": "周末下雨，干脆在家慢慢炖了一锅红烧肉。五花肉先冷水下锅焯水，再用小火把糖炒成焦糖色，"
        "肉块下锅翻炒上色，加料酒、生抽、老抽、八角和桂皮，倒入热水没过肉，小火炖一个半小时。"
        "\n\n最后大火收汁，汤汁变得浓稠发亮就可以出锅了。肥而不腻，入口即化，配一碗白米饭刚刚好。",
        "view_count": 1520,
        "comments": [
            ("李伟", "看着就流口水！我习惯最后加几颗冰糖，颜色更亮。"),
            ("Sofia Rossi", "This looks amazing. Is it very different from the braised pork in Shanghai restaurants?"),
        ],
    },
]

#: (query, content type filter or None): each should bring a particular row to the top
SAMPLE_SEARCHES: list[tuple[str, str | None]] = [
    ("how do I read a query plan to find the slow step", "lesson"),
    ("stretches for back pain from sitting all day", None),
    ("第一次做麻婆豆腐要注意什么", "lesson"),
    ("learn to cook spicy Sichuan food at home", "course"),
    ("how much of my salary should I put into savings each month", None),
    ("someone who builds search with text embeddings", "profile"),
]

# --- insertion ----------------------------------------------------------------------------------

# One statement per table: the rows travel as one JSON document ($1 is text so that the call
# works whether or not the connection has a jsonb codec), RETURNING gives the new ids by key.
_INSERT_PROFILES = """
INSERT INTO public.profiles (display_name, bio, interests, avatar_url, last_seen_at)
SELECT r.display_name, r.bio, r.interests, r.avatar_url, now() - make_interval(hours => r.idle_hours)
FROM jsonb_to_recordset($1::text::jsonb)
    AS r(display_name text, bio text, interests text[], avatar_url text, idle_hours int)
RETURNING id, display_name
"""
_INSERT_COURSES = """
INSERT INTO public.courses (title, description, category, tags, requirements, learning_objectives,
                            price_cents)
SELECT r.title, r.description, r.category, r.tags, r.requirements, r.learning_objectives,
       r.price_cents
FROM jsonb_to_recordset($1::text::jsonb)
    AS r(title text, description text, category text, tags text[], requirements text,
         learning_objectives text, price_cents int)
RETURNING id, title
"""
_INSERT_LESSONS = """
INSERT INTO public.lessons (course_id, title, description, content, position)
SELECT r.course_id, r.title, r.description, r.content, r.position
FROM jsonb_to_recordset($1::text::jsonb)
    AS r(course_id bigint, title text, description text, content text, position int)
RETURNING id
"""
_INSERT_POSTS = """
INSERT INTO public.posts (author_id, title, body, view_count)
SELECT r.author_id, r.title, r.body, r.view_count
FROM jsonb_to_recordset($1::text::jsonb)
    AS r(author_id bigint, title text, body text, view_count int)
RETURNING id, title
"""
_INSERT_COMMENTS = """
INSERT INTO public.comments (post_id, author_id, body, like_count)
SELECT r.post_id, r.author_id, r.body, r.like_count
FROM jsonb_to_recordset($1::text::jsonb)
    AS r(post_id bigint, author_id bigint, body text, like_count int)
RETURNING id
"""

_NESTED_KEYS = ("lessons", "comments", "author")


def _rows(items: list[dict[str, Any]], drop: tuple[str, ...] = _NESTED_KEYS) -> str:
    return json.dumps([{k: v for k, v in item.items() if k not in drop} for item in items])


async def insert_sample(conn: Any) -> dict[str, int]:
    """Insert the sample rows through an asyncpg connection, in one transaction.

    Returns how many rows of each content type were written. Running it twice inserts the
    sample twice; callers that want it once check for existing rows first.
    """
    async with conn.transaction():
        profiles = [{**profile, "idle_hours": 3 * index} for index, profile in enumerate(PROFILES)]
        profile_rows = await conn.fetch(_INSERT_PROFILES, _rows(profiles))
        profile_ids = {row["display_name"]: row["id"] for row in profile_rows}

        course_rows = await conn.fetch(_INSERT_COURSES, _rows(COURSES))
        course_ids = {row["title"]: row["id"] for row in course_rows}
        lessons = [
            {**lesson, "course_id": course_ids[course["title"]], "position": position}
            for course in COURSES
            for position, lesson in enumerate(course["lessons"], start=1)
        ]
        lesson_rows = await conn.fetch(_INSERT_LESSONS, _rows(lessons))

        posts = [{**post, "author_id": profile_ids[post["author"]]} for post in POSTS]
        post_rows = await conn.fetch(_INSERT_POSTS, _rows(posts))
        post_ids = {row["title"]: row["id"] for row in post_rows}
        comments = [
            {
                "post_id": post_ids[post["title"]],
                "author_id": profile_ids[author],
                "body": body,
                "like_count": (7 * number + len(body)) % 23,
            }
            for post in POSTS
            for number, (author, body) in enumerate(post["comments"])
        ]
        comment_rows = await conn.fetch(_INSERT_COMMENTS, _rows(comments))

    return {
        "profile": len(profile_rows),
        "course": len(course_rows),
        "lesson": len(lesson_rows),
        "post": len(post_rows),
        "comment": len(comment_rows),
    }
