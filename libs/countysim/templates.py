"""Petition texts the way citizens write them: per-category templates with random fillers.

Templates use `{place}` (where, as the citizen puts it) and any of the fillers in `_FILLERS`.
Categories missing here (an operator may add codes to categories.yaml) fall back to `GENERIC`.
"""

from __future__ import annotations

import random

MIN_CHARS = 10
MAX_CHARS = 300

TEMPLATES: dict[str, tuple[str, ...]] = {
    "drainage": (
        "{place}的下水道堵了，污水漫到路上，已经{days}了，请尽快处理。",
        "{place}排水沟被垃圾堵死，一下雨就积水，出门都得蹚水，麻烦派人疏通一下。",
        "我家门前的雨水井堵满了淤泥，{place}一下雨就淹，希望尽快清理。",
        "{place}化粪池满了往外冒，臭味很大，{days}没人管，请帮忙联系抽粪车。",
        "反映{place}污水管道破裂，污水流进了旁边的菜地，请有关部门尽快维修。",
        "{place}路边的排水渠年久失修，塌了一段，雨季快到了，担心淹了房子。",
        "{place}下水道反味。",
    ),
    "environment": (
        "{place}的垃圾桶{days}没人清运了，垃圾堆得满地都是，苍蝇蚊子特别多。",
        "{place}有人在路边焚烧秸秆和垃圾，烟很大，呛得人没法开窗，请管一管。",
        "{place}附近的养殖场粪污直接排到沟里，气味难闻，严重影响附近居民生活。",
        "有人往{place}的河道里倒建筑垃圾，河边已经堆了一大片，请查处。",
        "{place}的公共厕所很久没人打扫，又脏又臭，希望安排保洁。",
        "{place}附近的小作坊{time}还在生产，噪音和粉尘很大，影响休息。",
    ),
    "roads": (
        "{place}的路面塌了一个大坑，晚上看不清，已经有人骑电动车摔倒了，请尽快修补。",
        "{place}的路灯坏了{days}，晚上一片漆黑，老人孩子出门很不安全。",
        "{road}上的减速带被压坏了，铁钉露在外面，容易扎破车胎，请派人处理。",
        "{place}路口经常有大货车乱停，挡住视线，孩子上学路上很危险，建议设置禁停标志。",
        "{road}修路挖开后{days}没人管，路上全是土，下雨就成了泥塘。",
        "{place}去镇上的公交车班次太少，早上经常等一个小时，希望增加班次。",
        "{place}的路灯不亮。",
    ),
    "utilities": (
        "{place}停水{days}了，也没有提前通知，家里老人做饭都成问题，请尽快恢复供水。",
        "{place}的自来水发黄有异味，不敢喝，请派人检测一下水质。",
        "{place}经常停电，一天停好几次，冰箱里的东西都坏了，请查一下线路。",
        "今年冬天{place}的暖气一直不热，屋里才十几度，交了取暖费，希望尽快解决。",
        "{place}门口的燃气管道有异味，担心漏气，请燃气公司尽快来检查。",
        "{place}的电线杆歪了，电线垂得很低，离地不到两米，存在安全隐患。",
    ),
    "neighbour_dispute": (
        "{neighbour}在公共通道上堆放杂物，挡住了我家出行，多次沟通无果，请村里协调。",
        "{neighbour}家养的狗整夜叫，{time}都睡不着，说了也不听，请帮忙调解。",
        "{neighbour}盖房子占了我家的宅基地，双方争执不下，请有关部门来{place}现场确认界址。",
        "{neighbour}家的空调外机对着我家窗户，噪音大又滴水，请帮忙协调一下。",
        "{place}的{neighbour}在我家房后挖沟，把我家墙根泡了，出现裂缝，请求调解。",
        "{neighbour}家装修{time}还在施工，电钻声吵得孩子没法学习，希望村里出面协调。",
    ),
    "social_security": (
        "{elder}今年满六十了，想问一下城乡居民养老金怎么申领，需要准备哪些材料。",
        "我家是{place}的低保户，这个月的低保金到现在还没发，请帮忙查一下原因。",
        "{elder}行动不便，想申请残疾人两项补贴，不知道去哪里办理，能否上门办理。",
        "我在外地打工，社保卡丢了，想问一下怎么补办，能不能网上办。",
        "{place}有一户独居老人生活困难，家里没人照顾，希望民政部门关注一下。",
        "申请临时救助已经{days}了，一直没有结果，想了解一下办理进度。",
    ),
    "party_affairs": (
        "我是流动党员，常年在外地务工，想问一下组织关系怎么转到{place}。",
        "我是{place}的党员，想了解今年党费的缴纳标准和缴纳方式。",
        "{place}的党员活动室{days}没开门了，想参加组织生活不知道找谁。",
        "我已经递交入党申请书{days}了，一直没有消息，想问问现在是什么情况。",
        "建议{place}的党员志愿服务队多组织一些帮扶老人的活动，我愿意报名参加。",
    ),
    "public_safety": (
        "{place}的消防通道被私家车堵死了，万一着火消防车进不来，请尽快清理。",
        "{place}最近连续发生电动车被盗，希望加强夜间巡逻，安装监控。",
        "{place}有人私拉电线给电动车充电，线就搭在楼道里，存在火灾隐患。",
        "{place}{time}经常有人聚集喝酒闹事，影响周边居民休息，请派出所处理。",
        "{place}附近的小卖部偷偷卖烟花爆竹，存放在住人的屋里，很危险。",
        "{place}有陌生人挨家挨户推销保健品，专门找老人，怀疑是诈骗，请核查。",
    ),
    "housing": (
        "{place}的楼顶漏水，下雨天屋里到处滴水，找物业{days}了都没人来修。",
        "{place}的电梯经常出故障，{days}里停了好几次，还困过人，请督促维修。",
        "我们是{place}的回迁户，房产证拖了好几年还没办下来，请给个说法。",
        "{place}的物业费涨了，但服务越来越差，楼道没人打扫，请相关部门监管。",
        "我家老房子墙体开裂严重，属于危房，想申请危房改造，请告知办理流程。",
        "{place}有人私搭乱建，把公共绿地圈成了自家院子，请依法处理。",
    ),
    "education": (
        "孩子今年该上小学了，户口在{place}，想问一下划片在哪个学校，怎么报名。",
        "{child}在镇上读初中，学校放学太晚又没有校车，路上不安全，希望能解决接送问题。",
        "{place}附近的幼儿园收费太高，想问一下有没有公办幼儿园可以报名。",
        "我们是外地来务工的，住在{place}，孩子想在本地上学，需要办什么手续。",
        "{child}所在的学校食堂饭菜质量差，孩子经常吃不饱，请教育部门检查一下。",
        "{place}的校外培训机构没有资质，收了钱又要跑路，请查处。",
    ),
    "health": (
        "{place}卫生室的医生{days}不在岗，老人量血压拿药都得跑到镇上，很不方便。",
        "{elder}有慢性病，想问一下门诊慢特病怎么申请报销。",
        "{elder}行动不便，住在{place}，希望家庭签约医生能定期上门随访。",
        "{place}附近的诊所卫生条件很差，用过的针头随便乱丢，请卫生部门检查。",
        "想咨询一下今年的城乡居民医保缴费标准和截止时间，{place}什么时候集中缴纳。",
        "{child}需要打疫苗，一直预约不上，请问{place}附近哪里可以接种。",
    ),
    "agriculture": (
        "{place}的机井坏了，庄稼等着浇水，{days}没修好，请尽快处理。",
        "今年的耕地地力保护补贴还没发到，{place}其他户都有了，请帮忙查一下。",
        "{place}的农田里有人偷倒渣土，把好好的地都毁了，请查处。",
        "在{place}的农资店买的种子出苗率很低，怀疑是假种子，请农业部门检测。",
        "{place}的生产路被水冲坏了，收麦子的机器进不去地，请帮忙修一下。",
        "{place}的大棚遭了冰雹，损失很大，想问一下有没有农业保险理赔和补助。",
    ),
    "emergency": (
        "{place}有老人摔倒在家里起不来，家里没有其他人，请马上派人过来！",
        "{place}有一处房子冒烟了，好像着火了，请赶快派人来！",
        "{place}的河边有个小孩掉水里了，请立刻派人救援！",
        "{place}燃气味特别大，邻居家敲门没人应，担心出事，请紧急处理。",
        "{place}的变压器起火了，火花一直往外冒，请立即断电处理！",
    ),
    "other": (
        "想咨询一下{place}的便民服务中心上班时间，周末能不能办事。",
        "{place}的广场舞音响声音太大，{time}还在跳，希望能管理一下。",
        "建议在{place}增设一个快递驿站，现在取快递要跑到镇上。",
        "{place}公告栏上的联系电话打不通，想找村委会办事找不到人。",
        "感谢{place}的网格员帮我家老人办好了手续，特此表扬。",
        "{place}附近流浪狗越来越多，有的还咬人，请相关部门处理。",
    ),
}

GENERIC = (
    "{place}的问题{days}了一直没解决，希望有关部门尽快处理。",
    "反映一下{place}的情况，已经影响到周围好几户的正常生活了，请派人看看。",
    "{place}这件事找了好几个地方都说不归他们管，到底该找谁？",
    "想咨询一下{place}相关的政策，网上查不到，请工作人员回个电话。",
    "{place}存在安全隐患，{days}了没人处理，请尽快排查。",
)

_FILLERS: dict[str, tuple[str, ...]] = {
    "days": ("两天", "三天", "好几天", "一个星期", "半个月", "一个多月", "两个多月"),
    "time": ("晚上十点以后", "半夜", "凌晨两三点", "中午", "一大早", "周末"),
    "neighbour": ("隔壁邻居", "楼上邻居", "对门那家", "后院邻居", "隔壁老王家", "前排邻居"),
    "elder": ("我父亲", "我母亲", "家里老人", "我爷爷", "我奶奶", "我岳父"),
    "child": ("我家孩子", "我家孙子", "我闺女", "我儿子", "我外甥"),
    "road": ("幸福路", "团结路", "文化路", "中心街", "建设路", "人民路", "光明路", "村前大街"),
}

_CLOSINGS = (
    "请尽快处理。", "谢谢！", "之前已经反映过一次了，一直没有人管。", "希望有关部门重视。", "盼回复。",
    "请处理后给我回个电话。", "辛苦了。", "这个问题影响很多户，不只是我一家。", "如需了解情况可以随时联系我。",
    "已经找过村里，村里说管不了。",
)  # fmt: skip

_DETAILS = (
    "我们这里住的大多是老人，年轻人都在外面打工，自己解决不了。",
    "前几天有人来看过，说要上报，后来就没有消息了。",
    "天气越来越热，再拖下去问题会更严重。",
    "附近还有幼儿园，孩子们每天都从这里经过。",
    "我也打过几次电话，每次都说记下了，但是一直没有结果。",
    "希望这次能有个明确的答复，什么时候能解决。",
    "周围的邻居都很有意见，大家委托我来反映。",
    "现场的照片我都拍下来了，需要的话可以提供。",
    "去年也出过类似的问题，当时修了一下，没过多久又坏了。",
    "晚上路过的人多，真出了事谁来负责？",
)

_ROADS = _FILLERS["road"]
_LANDMARKS = ("村委会", "小学", "卫生室", "文化广场", "超市", "老戏台", "健身广场", "便民服务站")
_SIDES = ("东边", "西边", "南边", "北边", "门口", "旁边", "后面", "对面")
_VAGUE_PLACES = ("我们村", "我家附近", "我家门口", "这边", "我们这片")


def address(rng: random.Random) -> str:
    """A free-text address inside a village, as citizens give it."""
    kind = rng.random()
    if kind < 0.3:
        return f"{rng.randint(1, 24)}号楼{rng.randint(1, 4)}单元"  # 新村 are often resettlement blocks
    if kind < 0.55:
        return f"{rng.randint(1, 30)}排{rng.randint(1, 20)}号"
    if kind < 0.8:
        return f"{rng.choice(_ROADS)}{rng.randint(1, 120)}号"
    return f"{rng.choice(_LANDMARKS)}{rng.choice(_SIDES)}"


def vague_place(rng: random.Random) -> str:
    """Where, for someone who names no village."""
    return rng.choice(_VAGUE_PLACES)


def compose(rng: random.Random, category: str, place: str) -> str:
    """Petition content of MIN_CHARS..MAX_CHARS characters: a template, then maybe more sentences.

    Most are one or two sentences; about one in twenty is a long account, as hotline transcripts are.
    """
    template = rng.choice(TEMPLATES.get(category, GENERIC))
    text = template.format_map({"place": place, **{k: rng.choice(v) for k, v in _FILLERS.items()}})
    roll = rng.random()
    if roll < 0.05:
        target = rng.randint(150, MAX_CHARS)
        for sentence in rng.sample(_DETAILS, len(_DETAILS)):
            if len(text) >= target:
                break
            text = _append(text, sentence)
    elif roll < 0.6:
        for sentence in rng.sample(_CLOSINGS, rng.randint(1, 2)):
            text = _append(text, sentence)
    while len(text) < MIN_CHARS:  # "这边下水道反味。" is too terse to be a petition on its own
        text += rng.choice(_CLOSINGS)
    return text


def _append(text: str, sentence: str) -> str:
    return text + sentence if len(text) + len(sentence) <= MAX_CHARS else text
