"""Each rule of `weakenings()`, one at a time: what a branch's policy file may not change."""

from __future__ import annotations

from typing import Any

import pytest

from hie_notify.policy.loader import default_policy_data
from hie_notify.policy.protected import weakenings

OVERRIDABLE = [
    "customers.*.contacts",
    "support",
    "change_types.*.internal_notice",
    "change_types.*.external_notice",
]
PROTECTED: dict[str, Any] = {
    "support": {"name": "DevOps"},
    "customers": {"EoE": {"name": "East of England", "contacts": []}},
    "calendar": {"time_zone": "Europe/London"},
    "change_types": {
        "planned_infra_update": {
            "rank": 40,
            "internal_notice": {"minimum": "24h", "recommended": "48h"},
            "external_notice": {"minimum": "3bd", "recommended": "5bd"},
        }
    },
    "overridable": OVERRIDABLE,
}


def notice(which: str, **values: str) -> dict[str, Any]:
    return {"change_types": {"planned_infra_update": {which: values}}}


def found(branch: dict[str, Any]) -> list[str]:
    return list(weakenings(branch, PROTECTED, OVERRIDABLE))


def test_the_same_values_are_no_change() -> None:
    assert found(PROTECTED) == []
    assert found({"calendar": {"time_zone": "Europe/London"}}) == []


def test_rule_overridable_list_only_in_the_protected_policy() -> None:
    assert found({"overridable": ["calendar"]}) == [
        "overridable: overridable can only be set in the protected policy"
    ]


def test_rule_overridable_list_even_when_it_would_match_itself() -> None:
    # A protected policy that lists `overridable` among its overridable keys still refuses.
    assert list(weakenings({"overridable": ["*"]}, PROTECTED, ["*"])) == [
        "overridable: overridable can only be set in the protected policy"
    ]


def test_rule_keys_not_listed_as_overridable() -> None:
    assert found({"calendar": {"time_zone": "Europe/Paris"}}) == [
        "calendar.time_zone: may not be changed from a merge request (not in the protected "
        "policy's overridable keys)"
    ]
    assert found({"change_types": {"planned_infra_update": {"rank": 1}}}) == [
        "change_types.planned_infra_update.rank: may not be changed from a merge request (not "
        "in the protected policy's overridable keys)"
    ]


def test_overridable_patterns_match_by_segment() -> None:
    contacts = {"customers": {"EoE": {"contacts": [{"email": "a@b.example"}]}}}
    assert found(contacts) == []
    # `customers.*.contacts` does not open `customers.*.name`.
    assert len(found({"customers": {"EoE": {"name": "Other"}}})) == 1
    # A pattern opens the keys below it...
    assert found({"support": {"name": "Platform"}}) == []
    # ...but not a key above it: `customers` alone is not `customers.*.contacts`.
    assert len(found({"customers": ["replaced"]})) == 1


def test_a_longer_notice_is_allowed() -> None:
    assert found(notice("internal_notice", minimum="36h", recommended="72h")) == []
    assert found(notice("external_notice", minimum="4bd")) == []


def test_rule_a_shorter_notice_is_refused() -> None:
    assert found(notice("internal_notice", minimum="1h")) == [
        "change_types.planned_infra_update.internal_notice.minimum: would shorten the notice "
        "from 24h to 1h; notice may only get longer"
    ]
    assert found(notice("external_notice", recommended="4bd")) == [
        "change_types.planned_infra_update.external_notice.recommended: would shorten the "
        "notice from 5bd to 4bd; notice may only get longer"
    ]


@pytest.mark.parametrize(
    ("which", "before", "after"),
    [
        ("external_notice", "3bd", "1h"),  # 3 business days -> 1 hour
        ("external_notice", "3bd", "72h"),  # not the same as 3 business days across a weekend
        ("internal_notice", "24h", "1bd"),
    ],
)
def test_rule_the_kind_of_notice_cannot_change(which: str, before: str, after: str) -> None:
    assert found(notice(which, minimum=after)) == [
        f"change_types.planned_infra_update.{which}.minimum: would shorten the notice from "
        f"{before} to {after}; notice may only get longer"
    ]


def test_an_unreadable_notice_is_left_to_validation() -> None:
    assert found(notice("internal_notice", minimum="soon")) == []


def test_a_notice_the_protected_policy_does_not_set_is_not_compared() -> None:
    branch = {"change_types": {"cost_optimization": {"internal_notice": {"minimum": "1h"}}}}
    assert found(branch) == []


def test_every_problem_is_listed() -> None:
    branch = {
        "overridable": [],
        "calendar": {"time_zone": "UTC"},
        **notice("internal_notice", minimum="1h"),
    }
    assert [p.split(":")[0] for p in found(branch)] == [
        "overridable",
        "calendar.time_zone",
        "change_types.planned_infra_update.internal_notice.minimum",
    ]


def test_against_the_built_in_default() -> None:
    default = default_policy_data()
    allowed = default["overridable"]
    branch = {"change_types": {"planned_infra_update": {"external_notice": {"minimum": "1h"}}}}
    assert list(weakenings(branch, default, allowed)) == [
        "change_types.planned_infra_update.external_notice.minimum: would shorten the notice "
        "from 3bd to 1h; notice may only get longer"
    ]


# -- external_when: how often the external audience hears of it (af8f062) ----------------------

WHEN_PROTECTED: dict[str, Any] = {
    "change_types": {
        "planned_infra_update": {"external_when": "service_impacting", "rank": 40},
        "application_update": {"external_when": "always"},
    }
}
# The protected policy lets branches edit change types as a whole: external_when is open to
# them, and only its own rule stands between a branch and a quieter external audience.
WHEN_KEYS = ["change_types.*"]


def when_found(branch: dict[str, Any]) -> list[str]:
    return list(weakenings(branch, WHEN_PROTECTED, WHEN_KEYS))


@pytest.mark.parametrize(
    ("name", "before", "after"),
    [
        # service-impacting changes only -> the weekly digest: the gate stops waiting for them
        ("planned_infra_update", "service_impacting", "digest"),
        # at every stage -> only when service-impacting, or only in the digest
        ("application_update", "always", "service_impacting"),
        ("application_update", "always", "digest"),
    ],
)
def test_rule_external_when_may_only_be_set_to_always(name: str, before: str, after: str) -> None:
    branch = {"change_types": {name: {"external_when": after}}}
    assert when_found(branch) == [
        f"change_types.{name}.external_when: would tell the external audience {after!r} "
        f"instead of {before!r}; a branch may only set it to 'always'"
    ]


def test_external_when_always_is_allowed() -> None:
    # Telling the external audience at every stage is more notice, never less.
    branch = {"change_types": {"planned_infra_update": {"external_when": "always"}}}
    assert when_found(branch) == []


def test_external_when_refused_does_not_hide_what_follows() -> None:
    branch = {
        "change_types": {
            "planned_infra_update": {"external_when": "digest", "rank": 1},
            "application_update": {"external_when": "digest"},
        }
    }
    # (the rank is open to the branch through change_types.*: not a weakening this rule sees)
    assert [p.split(": ")[0] for p in when_found(branch)] == [
        "change_types.planned_infra_update.external_when",
        "change_types.application_update.external_when",
    ]


def test_the_external_when_rule_is_only_for_external_when() -> None:
    # Another key the branch may change with the value "digest" is not judged by this rule.
    protected = {"support": {"name": "DevOps", "note": "always"}}
    assert list(weakenings({"support": {"note": "digest"}}, protected, ["support"])) == []


# -- audiences only grow (issue 12): each rule with the whole message, one at a time

AUDIENCES_PROTECTED: dict[str, Any] = {
    "customers": {
        "EoE": {
            "name": "East of England",
            "contacts": [{"email": "desk@eoe.example.org", "critical": True}],
        }
    },
    "change_types": {
        "planned_infra_update": {"internal_channels": ["#devops", "#infrastructure", "#product"]}
    },
    "stakeholders": {"business": {"name": "Biz", "contacts": [{"name": "Product"}]}},
}
AUDIENCE_KEYS = [
    "customers.*.contacts",
    "customers.*.channels",
    "customers.*.environments",
    "stakeholders.*.contacts",
    "change_types.*.internal_channels",
    "support",
]
GROW = (
    "audiences may only grow (add to the list, never remove, empty, replace or downgrade an entry)"
)


def grown(branch: dict[str, Any], protected: dict[str, Any] = AUDIENCES_PROTECTED) -> list[str]:
    return list(weakenings(branch, protected, AUDIENCE_KEYS))


def test_rule_removing_a_channel_is_refused_naming_it() -> None:
    branch = {"change_types": {"planned_infra_update": {"internal_channels": ["#devops"]}}}
    assert grown(branch) == [
        f"change_types.planned_infra_update.internal_channels: would remove '#infrastructure', "
        f"'#product'; {GROW}"
    ]
    # adding one is fine
    more = ["#devops", "#infrastructure", "#product", "#sre"]
    assert grown({"change_types": {"planned_infra_update": {"internal_channels": more}}}) == []


def test_rule_emptying_replacing_or_downgrading_a_contact_is_refused() -> None:
    for contacts, named in (
        ([], "'desk@eoe.example.org'"),
        ([{"email": "other@eoe.example.org", "critical": True}], "'desk@eoe.example.org'"),
        ([{"email": "desk@eoe.example.org"}], "'desk@eoe.example.org'"),  # no longer critical
    ):
        branch = {"customers": {"EoE": {"contacts": contacts}}}
        assert grown(branch) == [f"customers.EoE.contacts: would remove {named}; {GROW}"]
    # a stakeholder contact without an email is named by its name
    assert grown({"stakeholders": {"business": {"contacts": []}}}) == [
        f"stakeholders.business.contacts: would remove 'Product'; {GROW}"
    ]


def test_rule_a_customers_own_channels_may_not_drop_the_policys_customer_channels() -> None:
    # The customer had the policy's customer channels (email by default): outbox alone drops it.
    assert grown({"customers": {"EoE": {"channels": ["outbox"]}}}) == [
        f"customers.EoE.channels: would remove 'email'; {GROW}"
    ]
    assert grown({"customers": {"EoE": {"channels": ["email", "webhook"]}}}) == []
    # with the protected policy's own customer channels as the base
    protected = {**AUDIENCES_PROTECTED, "channels": {"customer": ["email", "teams"]}}
    assert grown({"customers": {"EoE": {"channels": ["email"]}}}, protected) == [
        f"customers.EoE.channels: would remove 'teams'; {GROW}"
    ]


def test_rule_a_list_replaced_by_something_else_and_a_route_set_to_nothing() -> None:
    assert grown({"customers": {"EoE": {"contacts": "desk@eoe.example.org"}}}) == [
        "customers.EoE.contacts: expected a list that keeps every entry of the protected one"
    ]
    assert grown({"support": {"name": None}}, {"support": {"name": "DevOps"}}) == [
        "support.name: would remove it; audiences may only grow"
    ]
    # a key the protected policy does not have may be set to nothing
    assert grown({"support": {"phone": None}}, {"support": {"name": "DevOps"}}) == []


def test_rule_a_new_customer_is_an_added_audience_and_does_not_hide_what_follows() -> None:
    branch = {
        "customers": {"NEW": {"name": "New Trust", "contacts": [], "channels": ["outbox"]}},
        "change_types": {"planned_infra_update": {"internal_channels": ["#devops"]}},
    }
    assert grown(branch) == [
        f"change_types.planned_infra_update.internal_channels: would remove '#infrastructure', "
        f"'#product'; {GROW}"
    ]
    # a top-level `customers` key alone is no customer
    assert grown({"customers": None}) == [
        "customers: may not be changed from a merge request (not in the protected policy's "
        "overridable keys)"
    ]


def test_long_lists_are_shortened_in_the_message() -> None:
    protected = {"change_types": {"x": {"internal_channels": [f"#c{i}" for i in range(7)]}}}
    assert grown({"change_types": {"x": {"internal_channels": []}}}, protected) == [
        f"change_types.x.internal_channels: would remove '#c0', '#c1', '#c2', '#c3', '#c4' ...; "
        f"{GROW}"
    ]
    protected = {"change_types": {"x": {"internal_channels": [f"#c{i}" for i in range(5)]}}}
    assert grown({"change_types": {"x": {"internal_channels": []}}}, protected) == [
        f"change_types.x.internal_channels: would remove '#c0', '#c1', '#c2', '#c3', '#c4'; {GROW}"
    ]


def test_six_removed_entries_are_five_and_a_mark() -> None:
    protected = {"change_types": {"x": {"internal_channels": [f"#c{i}" for i in range(6)]}}}
    assert grown({"change_types": {"x": {"internal_channels": []}}}, protected) == [
        f"change_types.x.internal_channels: would remove '#c0', '#c1', '#c2', '#c3', '#c4' ...; "
        f"{GROW}"
    ]


def test_a_removed_contact_with_neither_email_nor_name_is_shown_whole() -> None:
    protected = {
        "customers": {"EoE": {"name": "East of England", "contacts": [{"critical": True}]}}
    }
    assert grown({"customers": {"EoE": {"contacts": []}}}, protected) == [
        f"customers.EoE.contacts: would remove \"{{'critical': True}}\"; {GROW}"
    ]


@pytest.mark.parametrize("written", ["New Trust", None, {}])
def test_a_new_customer_however_written_is_an_added_audience(written: Any) -> None:
    # `customers: {NEW: ...}` with no mapping under it is still a customer the protected policy
    # lacks: adding it weakens nothing (validation then says what a customer needs).
    assert grown({"customers": {"NEW": written}}) == []


# A later weakening is still found whatever the rule that judged the key before it.
MIXED_PROTECTED: dict[str, Any] = {
    "calendar": {"time_zone": "Europe/London"},
    "support": {"name": "DevOps"},
    "customers": {"EoE": {"name": "East of England", "contacts": [{"email": "a@eoe.example"}]}},
    "change_types": {
        "planned_infra_update": {
            "external_when": "service_impacting",
            "internal_notice": {"minimum": "24h", "recommended": "48h"},
        }
    },
}
MIXED_KEYS = ["support", "customers.*.contacts", "change_types.*"]
LAST = (
    "calendar.time_zone: may not be changed from a merge request (not in the protected "
    "policy's overridable keys)"
)


@pytest.mark.parametrize(
    ("first", "problems"),
    [
        ({"support": {"name": "DevOps"}}, 0),  # the same value: no change
        ({"support": {"name": "Platform"}}, 0),  # an overridable key changed
        ({"customers": {"NEW": {"name": "New"}}}, 0),  # an added customer
        ({"trial": True}, 1),  # a protected-only key
        ({"customers": {"EoE": {"name": "Other"}}}, 1),  # a key not overridable
        ({"change_types": {"planned_infra_update": {"external_when": "digest"}}}, 1),
        ({"change_types": {"planned_infra_update": {"internal_notice": {"minimum": "?"}}}}, 0),
        ({"change_types": {"planned_infra_update": {"internal_notice": {"minimum": "72h"}}}}, 0),
        ({"change_types": {"planned_infra_update": {"internal_notice": {"minimum": "1h"}}}}, 1),
        ({"customers": {"EoE": {"contacts": "a@eoe.example"}}}, 1),  # a list made a string
        ({"customers": {"EoE": {"contacts": []}}}, 1),  # a list emptied
        ({"support": {"name": None}}, 1),  # a value removed
    ],
)
def test_each_rule_lets_the_check_go_on_to_the_next_key(
    first: dict[str, Any], problems: int
) -> None:
    branch = {**first, "calendar": {"time_zone": "Europe/Paris"}}
    found = list(weakenings(branch, MIXED_PROTECTED, MIXED_KEYS))
    assert len(found) == problems + 1 and found[-1] == LAST, found


@pytest.mark.parametrize(
    ("value", "local"),
    [("1", True), ("true", True), ("TRUE", True), ("Yes", True), ("0", False), ("", False)],
)
def test_the_local_policy_flag(value: str, local: bool) -> None:
    from hie_notify.policy.protected import local_policy_flag

    assert local_policy_flag({"HIE_LOCAL_POLICY": value}) is local
    assert local_policy_flag({}) is False
