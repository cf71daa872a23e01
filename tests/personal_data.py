"""Generated personal data for the privacy tests: phones, names, street addresses and ID-card numbers
that are unique in a run and unlikely to occur by chance anywhere else in a dump."""

from __future__ import annotations

import random
from dataclasses import dataclass

from services.intake.redact import id_check_digit

FAMILY = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
# given-name characters rare enough that two of them in a row occur nowhere else in the platform's data
GIVEN = "翀翎翕翚翯翱翼耀耄耆耋耘耙耜耦聃聆聿肃肇胤舜舫艮芃芊芙芩芫芮苒苓茁茗荀荃荟莘菡萱蓁蔚"
ROADS = ("幸福", "朝阳", "建设", "解放", "人民", "和平", "光明", "青年", "团结", "胜利")


@dataclass(frozen=True)
class Person:
    name: str
    phone: str
    address: str
    id_number: str

    def values(self) -> dict[str, str]:
        return {"name": self.name, "phone": self.phone, "address": self.address, "id_number": self.id_number}


def id_number(rng: random.Random) -> str:
    area = f"{rng.randint(110000, 659000):06d}"
    born = f"{rng.randint(1940, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = f"{area}{born}{rng.randint(0, 999):03d}"
    return first17 + id_check_digit(first17)


def people(n: int, seed: int) -> list[Person]:
    """`n` different people; phones start 13/15/18/19 (never 17 or 12, which timestamps in a dump begin with)."""
    rng = random.Random(seed)
    out: dict[str, Person] = {}
    while len(out) < n:
        phone = f"1{rng.choice('3589')}{rng.randint(0, 999_999_999):09d}"
        name = rng.choice(FAMILY) + "".join(rng.sample(GIVEN, 2))
        address = f"{rng.choice(ROADS)}路{rng.randint(100, 999)}号{rng.randint(1, 30)}栋{rng.randint(101, 2999)}室"
        out.setdefault(phone, Person(name, phone, address, id_number(rng)))
    return list(out.values())


def petition_text(person: Person, rng: random.Random) -> str:
    """A petition that writes the citizen's identifiers into its text, as callers on the hotline do."""
    return rng.choice(
        (
            f"我叫{person.name}，住{person.address}，身份证号{person.id_number}，电话{person.phone}，楼下下水道堵了三天。",
            f"{person.address}门口路灯坏了，联系人{person.name}，手机 {person.phone[:3]} {person.phone[3:7]} "
            f"{person.phone[7:]}，身份证{person.id_number}。",
            f"低保申请一直没有回音。申请人{person.name}（{person.id_number}），住址{person.address}，请回电{person.phone}。",
        )
    )
