"""Chinese place and person names, village aliases and phone numbers, all drawn from a given RNG."""

from __future__ import annotations

import random

VILLAGE_SUFFIX = "新村"

# T01 is always the county seat's urban subdistrict; the others are drawn from this pool.
SEAT_TOWN = "城关街道"
TOWN_POOL = (
    "王台镇", "张家楼镇", "铁山镇", "六汪镇", "宝山镇", "大村镇", "海青镇", "泊里镇", "大场镇",
    "藏南镇", "琅琊镇", "胶河镇", "洋河镇", "里岔镇", "隐珠街道", "珠山街道", "滨海街道",
)  # fmt: skip

# Surnames with rough relative frequencies (common national ones plus Jiaodong ones such as 隋, 逄, 臧).
SURNAMES = (
    ("王", 9), ("李", 8), ("张", 8), ("刘", 6), ("陈", 4), ("杨", 4), ("赵", 3), ("黄", 2),
    ("周", 2), ("吴", 2), ("徐", 2), ("孙", 3), ("胡", 2), ("朱", 2), ("高", 3), ("林", 2),
    ("郭", 2), ("马", 2), ("宋", 2), ("郑", 1), ("韩", 2), ("唐", 1), ("冯", 1), ("于", 3),
    ("董", 1), ("程", 1), ("曹", 1), ("袁", 1), ("许", 1), ("沈", 1), ("彭", 1), ("吕", 1),
    ("苏", 1), ("蒋", 1), ("蔡", 1), ("贾", 1), ("丁", 2), ("魏", 1), ("薛", 1), ("姜", 3),
    ("范", 1), ("方", 1), ("石", 1), ("姚", 1), ("崔", 1), ("孟", 1), ("邵", 1), ("纪", 1),
    ("宫", 1), ("臧", 1), ("逄", 1), ("隋", 1), ("管", 1), ("薄", 1), ("毕", 1), ("綦", 1),
)  # fmt: skip
_SURNAME_CHARS = tuple(s for s, _ in SURNAMES)
_SURNAME_WEIGHTS = tuple(w for _, w in SURNAMES)

GIVEN_NAME_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰文辉建国红梅春海波鹏宁亮成玲"
    "燕晓东志永德振宏俊宇浩欣婷雪倩鑫佳子思雨淑荣庆"
)

_VILLAGE_DIRECTIONS = "大小前后东西南北上下"
_VILLAGE_FEATURES = "庄疃沟河岭屯埠洼台寨山湾崖泉坡峪"
_VILLAGE_NATURE = "柳桃杏梨枣松槐柏沙龙凤青红白鹿鹤牛"

# Characters a citizen may type instead (same or near pronunciation, pinyin input method slips).
HOMOPHONES = {
    "王": "汪", "张": "章", "李": "里", "刘": "留", "陈": "晨", "杨": "阳", "赵": "照", "黄": "皇",
    "周": "舟", "吴": "武", "徐": "许", "胡": "湖", "朱": "珠", "高": "糕", "林": "琳", "郭": "国",
    "马": "玛", "宋": "送", "郑": "正", "韩": "寒", "唐": "堂", "冯": "凤", "于": "余", "董": "懂",
    "程": "成", "曹": "槽", "袁": "元", "沈": "申", "彭": "鹏", "吕": "旅", "苏": "酥", "蒋": "江",
    "蔡": "菜", "贾": "假", "丁": "叮", "魏": "卫", "薛": "雪", "姜": "疆", "范": "饭", "方": "芳",
    "石": "时", "姚": "尧", "崔": "翠", "孟": "梦", "邵": "绍", "纪": "记", "宫": "公", "臧": "藏",
    "逄": "庞", "隋": "随", "管": "馆", "薄": "博", "毕": "必", "綦": "齐", "孙": "荪", "许": "旭", "凤": "奉",
    "家": "佳", "庄": "桩", "疃": "团", "沟": "勾", "河": "和", "岭": "领", "屯": "囤", "埠": "部",
    "洼": "娃", "台": "抬", "寨": "债", "山": "杉", "湾": "弯", "崖": "涯", "泉": "全", "坡": "泼",
    "峪": "玉", "戈": "哥", "大": "达", "小": "晓", "前": "钱", "后": "厚", "东": "冬", "西": "溪",
    "南": "楠", "北": "贝", "上": "尚", "下": "夏", "柳": "六", "桃": "陶", "杏": "幸", "梨": "离",
    "枣": "早", "松": "淞", "槐": "怀", "柏": "百", "沙": "纱", "龙": "隆", "青": "清", "红": "洪",
    "白": "柏", "鹿": "路", "鹤": "贺", "牛": "纽",
}  # fmt: skip

# Names citizens give for places that do not exist in the county. Their characters are disjoint from
# every real village name and its aliases, so no fuzzy matcher should resolve them.
_UNKNOWN_CHARS = "锦福瑞祥兴旺盛嘉悦怡馨雅逸泰康裕丰顺富吉"
_UNKNOWN_SUFFIXES = ("村", "新村", "社区", "小区", "花园")

# Mainland mobile prefixes actually in use (the first three digits).
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "145", "147", "150", "151",
    "152", "153", "155", "156", "157", "158", "159", "166", "170", "173", "175", "176", "177", "178",
    "180", "181", "182", "183", "184", "185", "186", "187", "188", "189", "191", "193", "195", "198", "199",
)  # fmt: skip


def _homophone_classes() -> dict[str, str]:
    """Map every character to one representative of its homophone class (union-find over HOMOPHONES)."""
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.setdefault(c, c) != c:
            c = parent[c]
        return c

    for a, b in HOMOPHONES.items():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {c: find(c) for c in parent}


_CLASS_OF = _homophone_classes()


def sound_key(text: str) -> str:
    """Text with every character replaced by its homophone class: equal keys sound alike."""
    return "".join(_CLASS_OF.get(c, c) for c in text)


def town_names(rng: random.Random, n: int) -> list[str]:
    """`n` distinct town names, the county seat's subdistrict first."""
    return [SEAT_TOWN, *rng.sample(TOWN_POOL, n - 1)]


def _village_base(rng: random.Random) -> str:
    surname = rng.choices(_SURNAME_CHARS, _SURNAME_WEIGHTS)[0]
    feature = rng.choice(_VILLAGE_FEATURES)
    direction = rng.choice(_VILLAGE_DIRECTIONS)
    pattern = rng.random()
    if pattern < 0.30:
        return f"{surname}家{feature}"  # 王家庄
    if pattern < 0.55:
        return f"{direction}{surname}{feature}"  # 大王庄
    if pattern < 0.65:
        return f"{surname}戈庄"  # 王戈庄
    if pattern < 0.80:
        return f"{direction}{surname}家{feature}"  # 前王家疃
    nature = rng.choice(_VILLAGE_NATURE)
    return f"{nature}{feature}" if pattern < 0.90 else f"{direction}{nature}{feature}"  # 柳沟, 东石河


def village_names(rng: random.Random, n: int) -> list[str]:
    """`n` village names ending in 新村, no two sounding alike, so that aliases never collide."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        base = _village_base(rng)
        key = sound_key(base)
        if key not in seen:
            seen.add(key)
            names.append(base + VILLAGE_SUFFIX)
    return names


def village_aliases(rng: random.Random, name: str) -> tuple[str, ...]:
    """What a citizen may type for `name`: without 新村, with 村, and a homophone slip of each.

    Names are unique by `sound_key`, so these never equal another village's name or alias.
    """
    base = name.removesuffix(VILLAGE_SUFFIX)
    positions = [i for i, c in enumerate(base) if c in HOMOPHONES]
    i = rng.choice(positions)  # every character in the name pools has a homophone
    slip = base[:i] + HOMOPHONES[base[i]] + base[i + 1 :]
    return (base, f"{base}村", f"{slip}{VILLAGE_SUFFIX}", slip)


def unknown_place_name(rng: random.Random) -> str:
    """A village-like name that exists nowhere in the county (for petitions that need triage)."""
    return "".join(rng.sample(_UNKNOWN_CHARS, 2)) + rng.choice(_UNKNOWN_SUFFIXES)


def unknown_place_chars() -> str:
    return _UNKNOWN_CHARS


def surname(rng: random.Random) -> str:
    return rng.choices(_SURNAME_CHARS, _SURNAME_WEIGHTS)[0]


def person_name(rng: random.Random) -> str:
    """A full Chinese name: surname plus one or (more often) two given-name characters."""
    given_len = 2 if rng.random() < 0.7 else 1
    return surname(rng) + "".join(rng.choices(GIVEN_NAME_CHARS, k=given_len))


def mobile_phone(rng: random.Random) -> str:
    """An 11-digit mainland mobile number."""
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def landline_phone(rng: random.Random) -> str:
    """A local landline as hotline operators record it, e.g. 0532-86012345."""
    return f"0532-8{rng.randrange(10**7):07d}"
