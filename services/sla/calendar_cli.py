"""`petitions-calendar import`: turn the State Council's holiday notice into `config/calendar/<year>.yaml`.

    petitions-calendar import NOTICE.txt|- [--dir DIR] [--year Y] [--dry-run] [--force]

Save the notice's text (国务院办公厅关于XXXX年部分节假日安排的通知, from gov.cn) as a UTF-8 file, or pipe
it in with `-`. The command prints what it understood, item by item, so an operator can compare it with
the notice; writes `<dir>/<year>.yaml` in the layout of `config/calendar/2026.yaml`; and reads the
written file back exactly as the sla service does, so a file it wrote always loads. A running sla
service notices the new file by itself (CalendarDirectory, every SLA_CALENDAR_CHECK_S) and derives the
affected deadlines again; the file is replaced in one step, so it never reads half of it.

Exit codes: 0 written, unchanged or dry run; 1 not written (an existing file differs and --force was not
given, the directory does not exist, the notice cannot be read); 2 the notice is malformed (the offending
line is quoted on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import yaml

from petition_common.config import Settings
from petition_kernel.calendar import CalendarFileError, YearSchedule, parse_year_schedule
from petition_kernel.calendar_notice import WEEKDAYS, Notice, NoticeError, parse_notice
from services.sla.bootstrap import calendar_dir

# the directory the services read (SLA_CALENDAR_DIR or CALENDAR_DIR, default config/calendar)
DEFAULT_DIR = calendar_dir(Settings.from_env("sla"))

EXIT_OK = 0
EXIT_NOT_WRITTEN = 1
EXIT_BAD_NOTICE = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petitions-calendar",
        description="Working-day calendar files for the sla service.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    imports = commands.add_parser(
        "import",
        help="write <year>.yaml from the State Council's holiday notice",
        description="Read 国务院办公厅关于XXXX年部分节假日安排的通知 and write the year's calendar file.",
    )
    imports.add_argument("notice", metavar="NOTICE", help="the notice's text (UTF-8), or - for stdin")
    imports.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"where the year files are (default: the services' calendar directory, here {DEFAULT_DIR})",
    )
    imports.add_argument("--year", type=int, help="the notice's year, when its title and preamble do not say")
    imports.add_argument("--dry-run", action="store_true", help="print the file instead of writing it")
    imports.add_argument("--force", action="store_true", help="replace an existing file that differs")
    imports.set_defaults(run=import_notice)
    return parser


def import_notice(args: argparse.Namespace) -> int:
    try:
        text = _read_text(args.notice)
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read {args.notice}: {exc}", EXIT_NOT_WRITTEN)
    try:
        notice = parse_notice(text, year=args.year)
    except NoticeError as exc:
        return _fail(f"{args.notice}: {exc}", EXIT_BAD_NOTICE)

    print(describe(notice))
    content = render_year_file(notice)
    target = Path(args.dir) / f"{notice.year}.yaml"
    if args.dry_run:
        print(f"\n--- {target} (dry run, not written)\n{content}", end="")
        return EXIT_OK
    if not target.parent.is_dir():
        return _fail(f"{target.parent}: no such directory (the sla service reads config/calendar)", EXIT_NOT_WRITTEN)
    if target.exists():
        existing = target.read_text(encoding="utf-8")
        if existing == content:
            print(f"{target} is already this notice; unchanged")
            return EXIT_OK
        if not args.force:
            return _fail(f"{target} exists and differs ({_difference(existing, notice, target)}); --force replaces it")

    expected = notice.schedule(str(target))  # the service's own checks, before the disk is touched
    _write_atomically(target, content)
    loaded = _reload(target, notice.year)
    if (loaded.holidays, loaded.workdays, loaded.notice) != (expected.holidays, expected.workdays, expected.notice):
        # Cannot happen unless render_year_file is wrong; say so rather than leave a wrong file unnoticed.
        return _fail(f"{target} was written but reads back different days; fix or delete it", EXIT_NOT_WRITTEN)
    print(
        f"wrote {target}: {len(loaded.holidays)} days off, {len(loaded.workdays)} make-up working days; "
        "it loads as the sla service reads it"
    )
    return EXIT_OK


def _read_text(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    return Path(name).read_text(encoding="utf-8-sig")  # -sig: a notice saved on Windows starts with a BOM


def _fail(message: str, code: int = EXIT_NOT_WRITTEN) -> int:
    print(f"petitions-calendar: {message}", file=sys.stderr)
    return code


# -- what was understood ----------------------------------------------------------------------------


def describe(notice: Notice) -> str:
    """The notice as understood, item by item, for the operator to hold against the notice."""
    lines = [f"{notice.label or '(no title)'}: {notice.year}"]
    for item in notice.items:
        lines.append(f"{item.label}")
        lines.append(f"  days off ({len(item.days_off)}): {_days(item.days_off)}")
        lines.append(f"  make-up working days: {_days(item.workdays) or 'none'}")
    lines.append(f"{len(notice.holidays)} days off, {len(notice.workdays)} make-up working days")
    return "\n".join(lines)


def _days(days: Sequence[date]) -> str:
    return ", ".join(f"{d} {WEEKDAYS[d.weekday()]}" for d in days)


# -- the year file ----------------------------------------------------------------------------------


def render_year_file(notice: Notice) -> str:
    """`<year>.yaml` in the layout of config/calendar/2026.yaml: each item's days under its line."""
    out = [
        f"# {notice.title or f'The holiday notice for {notice.year}'}, imported with `petitions-calendar import`.",
        "# Every day off of each item's range is listed, Saturdays and Sundays included; see README.md.",
    ]
    if notice.label is not None:
        out.append(f"notice: {_yaml_string(notice.label)}")
    out.append("holidays:")
    for item in notice.items:
        out.append(f"  # {item.line}")
        out.extend(f"  - {day}" for day in item.days_off)
    out.append("workdays:" if notice.workdays else "workdays: []")
    for item in notice.items:
        out.extend(
            f"  - {day}  # {item.label}：{day.month}月{day.day}日（{WEEKDAYS[day.weekday()]}）上班"
            for day in item.workdays
        )
    return "\n".join(out) + "\n"


def _yaml_string(value: str) -> str:
    """Plain when YAML reads it back unchanged (as in 2026.yaml), else double-quoted (JSON is valid YAML)."""
    try:
        if yaml.safe_load(f"key: {value}") == {"key": value}:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value, ensure_ascii=False)


def _write_atomically(target: Path, content: str) -> None:
    """The sla service may start at any moment: it must see the old file or the new one, never half."""
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(content)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _reload(path: Path, year: int) -> YearSchedule:
    """The file read as `load_year_overrides` reads each year file."""
    return parse_year_schedule(year, yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def _difference(existing: str, notice: Notice, path: Path) -> str:
    """What replacing the existing file would change, in days."""
    try:
        current = parse_year_schedule(notice.year, yaml.safe_load(existing), str(path))
    except (CalendarFileError, yaml.YAMLError) as exc:
        return f"it does not load: {exc}"
    changes = [
        f"{label} {sign}{day}"
        for label, now, new in (
            ("day off", current.holidays, notice.holidays),
            ("make-up day", current.workdays, notice.workdays),
        )
        for sign, days in (("-", now - new), ("+", new - now))
        for day in sorted(days)
    ]
    return "; ".join(changes) if changes else "same days, other text"


if __name__ == "__main__":
    sys.exit(main())
