"""The policy region's bank holidays, loaded one country at a time (calendar.country_holidays).

tests/test_startup.py checks, in a fresh interpreter, that only the policy's country module is
imported; these tests pin the loader's rules in this process, where other tests may already
have imported every country (each test takes `holidays.countries` out of sys.modules first).
"""

from __future__ import annotations

import importlib
import sys
from datetime import date
from pathlib import Path

import holidays
import pytest

from hie_notify import calendar
from hie_notify.calendar import BusinessCalendar, country_holidays
from hie_notify.errors import InputError
from hie_notify.policy import load_policy

YEARS = (2025, 2026, 2027)


@pytest.fixture
def no_countries(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a fresh process: no country module imported (sys.modules is restored after)."""
    for name in [m for m in sys.modules if m.startswith("holidays.countries")]:
        monkeypatch.delitem(sys.modules, name)


def _days(found: object) -> dict[date, str]:
    assert isinstance(found, holidays.HolidayBase)
    for year in YEARS:
        found.get(date(year, 1, 1))  # fills the year
    return dict(sorted(found.items()))


@pytest.mark.usefixtures("no_countries")
@pytest.mark.parametrize(
    ("code", "module", "class_name"),
    [
        ("GB", "united_kingdom", "UnitedKingdom"),
        ("GBR", "united_kingdom", "UnitedKingdom"),
        ("UK", "united_kingdom", "UnitedKingdom"),
        ("UnitedKingdom", "united_kingdom", "UnitedKingdom"),
        ("IE", "ireland", "Ireland"),
        ("US", "united_states", "UnitedStates"),
    ],
)
def test_a_country_is_found_by_code_alias_or_class_name(
    code: str, module: str, class_name: str
) -> None:
    found = calendar._country_class(code)
    assert found is not None and found.__name__ == class_name
    assert sys.modules[f"holidays.countries.{module}"].__dict__[class_name] is found
    assert "holidays.countries" not in sys.modules, "the package of every country was imported"


@pytest.mark.usefixtures("no_countries")
@pytest.mark.parametrize("code", ["XX", "", "gb", "countries"])
def test_a_code_no_country_has_is_not_guessed(code: str) -> None:
    assert calendar._country_class(code) is None
    assert not [m for m in sys.modules if m.startswith("holidays.countries")]


@pytest.mark.usefixtures("no_countries")
@pytest.mark.parametrize(
    ("country", "subdivision"), [("GB", "ENG"), ("GB", "SCT"), ("UK", "NIR"), ("FR", None)]
)
def test_the_one_module_gives_the_library_days_and_names(
    country: str, subdivision: str | None
) -> None:
    found = country_holidays(country, subdivision)
    assert type(found) is calendar._country_class(country), "not the class loaded on its own"
    ours = _days(found)
    assert "holidays.countries" not in sys.modules
    theirs = _days(holidays.country_holidays(country, subdiv=subdivision, years=YEARS))
    assert ours == theirs
    assert ours  # a region with no holidays would make the comparison empty


@pytest.mark.usefixtures("no_countries")
def test_subdivisions_differ_as_the_regions_do() -> None:
    scotland = country_holidays("GB", "SCT")
    england = country_holidays("GB", "ENG")
    assert scotland.get(date(2026, 1, 2)) == "New Year Holiday"
    assert england.get(date(2026, 1, 2)) is None
    assert england.get(date(2026, 12, 28)) == "Boxing Day (observed)"


@pytest.mark.usefixtures("no_countries")
def test_an_unknown_subdivision_is_refused_as_the_library_refuses_it() -> None:
    with pytest.raises(NotImplementedError, match="XYZ"):
        country_holidays("GB", "XYZ")


def test_with_every_country_imported_the_library_path_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    importlib.import_module("holidays.countries")  # every country, as the library loads them
    monkeypatch.setattr(calendar, "_country_class", _refuse)
    assert country_holidays("GB", "SCT").get(date(2026, 1, 2)) == "New Year Holiday"


def _refuse(country: str) -> None:
    raise AssertionError(f"the one-module loader ran for {country} with every country loaded")


@pytest.mark.usefixtures("no_countries")
def test_a_country_the_registry_does_not_place_takes_the_library_path() -> None:
    with pytest.raises(NotImplementedError, match="Country XX not available"):
        country_holidays("XX", None)


def _fake_holidays_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | None
) -> None:
    """Point the loader at a copy of the package whose `countries/france.py` is `source`."""
    package = tmp_path / "holidays"
    (package / "countries").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if source is not None:
        (package / "countries" / "france.py").write_text(source)
    monkeypatch.setattr(holidays, "__file__", str(package / "__init__.py"))


@pytest.mark.usefixtures("no_countries")
def test_a_module_that_fails_to_load_is_not_left_half_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_holidays_package(tmp_path, monkeypatch, "raise RuntimeError('broken country')\n")
    with pytest.raises(RuntimeError, match="broken country"):
        calendar._country_class("FR")
    assert "holidays.countries.france" not in sys.modules


@pytest.mark.usefixtures("no_countries")
def test_a_missing_module_file_falls_back_to_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_holidays_package(tmp_path, monkeypatch, None)
    assert calendar._country_class("FR") is None
    assert "holidays.countries.france" not in sys.modules


@pytest.mark.usefixtures("no_countries")
def test_the_module_is_loaded_from_the_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_holidays_package(tmp_path, monkeypatch, "class France:\n    marker = 'copy'\n")
    found = calendar._country_class("FR")
    assert found is not None and found.marker == "copy"
    assert sys.modules["holidays.countries.france"].__file__ == str(
        tmp_path / "holidays" / "countries" / "france.py"
    )


@pytest.mark.usefixtures("no_countries")
def test_a_module_already_imported_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    module = types.ModuleType("holidays.countries.france")

    class France:
        pass

    module.France = France  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "holidays.countries.france", module)
    assert calendar._country_class("FR") is France


def test_from_policy_takes_the_subdivision(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("calendar: {holidays: {country: GB, subdivision: SCT}}\n")
    cal = BusinessCalendar.from_policy(load_policy(policy))
    assert cal.holiday_name(date(2026, 1, 2)) == "New Year Holiday"
    assert not cal.is_business_day(date(2026, 1, 2))
    assert cal.next_business_day(date(2026, 1, 1)) == date(2026, 1, 5)


def test_no_business_day_is_a_policy_error_naming_what_to_fix() -> None:
    cal = BusinessCalendar("Europe/London", work_days=())
    with pytest.raises(InputError) as caught:
        cal.next_business_day(date(2026, 12, 1))
    assert str(caught.value) == (
        "policy calendar: no business day in the 366 days after Tue 1 Dec 2026 "
        "(calendar.working_hours.days and calendar.holidays: expected at least one working day "
        "that is not a holiday)"
    )


@pytest.mark.usefixtures("no_countries")
def test_a_module_without_the_class_falls_back_to_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_holidays_package(tmp_path, monkeypatch, "class Other:\n    pass\n")
    assert calendar._country_class("FR") is None
