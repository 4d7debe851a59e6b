"""TEST_DISCOVERY_STAGING_CONFIG: an INI file of facts (strings) attached to matching tests.

Format (read by configparser: no interpolation, keys keep their case, a repeated section or key
is an error; comments are whole lines starting with ``#`` or ``;``)::

    # Every test (the lowest precedence).
    [DEFAULT]
    owner = qa

    # A glob (fnmatch, case-sensitive) over node ids; ``*`` also matches ``/`` and ``::``.
    [tests/api/*]
    pool = api

    # Tests carrying the marker "slow".
    [marker:slow]
    timeout = 600

    # A file: every test of it; a class: its tests and its nested classes' tests.
    [tests/test_login.py]
    pool = login
    [tests/test_login.py::TestLogin]
    pool = login-classes

    # One test (node ids as collected: no [parametrize] part).
    [tests/test_login.py::TestLogin::test_ok]
    pool = fast

A section is a glob when its name holds ``*``, ``?`` or ``[``. Each test gets the keys of every
section matching it; when several define a key the more specific wins: exact node id > class
(the deeper class first) > file > marker > glob > DEFAULT, and between sections of the same
kind the later one in the file.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from fnmatch import translate

_NO_DEFAULT = "\x00not a section"  # DEFAULT is read as a plain section, handled below
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class _Section:
    order: int
    values: dict[str, str]


# How a test's facts are put together, each level overriding the ones before it:
#   [DEFAULT] < [glob] < [marker:name] < [file] < [file::Class] < [file::Class::Inner] < [node id]
# Between sections of one level, the later in the file wins.
@dataclass
class StagingConfig:
    default: dict[str, str] = field(default_factory=dict)
    exact: dict[str, _Section] = field(default_factory=dict)  # node id or node id prefix
    markers: dict[str, list[_Section]] = field(default_factory=dict)
    globs: list[tuple[re.Pattern[str], _Section]] = field(default_factory=list)

    def for_test(self, nodeid: str, file: str, markers: tuple[str, ...]) -> dict[str, str]:
        """The facts of one test (``file`` is its module's path, ``markers`` its marker names)."""
        found = dict(self.default)
        for pattern, section in self.globs:
            if pattern.match(nodeid):
                found.update(section.values)
        marked = [s for name in set(markers) for s in self.markers.get(name, ())]
        for section in sorted(marked, key=lambda s: s.order):
            found.update(section.values)
        parts = nodeid.split("::")
        # The file, then its classes outside in, then the test itself: the last one wins.
        prefixes = [file, *("::".join(parts[:depth]) for depth in range(2, len(parts) + 1))]
        for prefix in prefixes:
            if (matched := self.exact.get(prefix)) is not None:
                found.update(matched.values)
        return found


def parse_staging_config(text: str) -> StagingConfig:
    """Raises ValueError naming the problem when ``text`` is not such an INI file."""
    parser = configparser.ConfigParser(interpolation=None, default_section=_NO_DEFAULT, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text.removeprefix("\ufeff"), source="TEST_DISCOVERY_STAGING_CONFIG")
    except configparser.Error as exc:
        raise ValueError(f"staging config is not a valid INI file: {exc}") from None
    config = StagingConfig()
    for order, name in enumerate(parser.sections()):
        values = dict(parser.items(name))
        section = _Section(order, values)
        selector = name.strip()
        if selector == "DEFAULT":
            config.default.update(values)
        elif selector.startswith("marker:"):
            marker = selector.removeprefix("marker:").strip()
            if not marker:
                raise ValueError(f"staging config section [{name}] names no marker")
            config.markers.setdefault(marker, []).append(section)
        elif _GLOB_CHARS.search(selector):
            config.globs.append((re.compile(translate(selector)), section))
        elif not selector:
            raise ValueError("staging config has a section with an empty name")
        else:
            config.exact[selector] = section
    return config
