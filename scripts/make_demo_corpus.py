#!/usr/bin/env python3
"""Generate ragguard's demo corpus: ``ragguard/_demo/corpus.jsonl``.

A fictional B2B software group with three tenants (``acme``, ``globex``, ``initech``)
sharing one vector store. Every document type is a set of chunk templates (with a few
alternative phrasings each, in ``scripts/demo_corpus_templates.json``) filled from
per-tenant facts and seeded random slots, then cut into chunks with ``tenant``/``dept``/``level``/``owner``/... metadata. The output
is committed; running the script again reproduces it byte for byte:

    python scripts/make_demo_corpus.py            # rewrite the corpus
    python scripts/make_demo_corpus.py --check    # exit 1 if the committed file differs

Only the standard library is used (``random.Random`` with a fixed seed: its ``choice``
and ``randint`` sequences are stable across Python versions).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SEED = 20250611
OUTPUT = Path(__file__).resolve().parent.parent / "ragguard" / "_demo" / "corpus.jsonl"
# Chunk ids are uuid5(namespace, "tenant/doc_id/chunk_index"): stable and readable back.
NAMESPACE = uuid.UUID("6f1c2a4e-6d5b-5a0e-9c7e-2b8a3f1d0c55")

Slots = dict[str, str]


@dataclass(frozen=True)
class Tenant:
    """The facts one tenant's documents are written from."""

    key: str
    company: str
    product: str
    domain: str
    pay_multiplier: float
    services: tuple[str, str, str]
    customers: tuple[str, str, str, str]
    competitor: str
    people: dict[str, str]  # role -> user id (also the owner of that role's documents)
    names: dict[str, str]  # user id -> display name
    codename: str
    target: str
    deal_summary: str
    deal_value: int
    deal_cash: int
    incident_id: str
    incident_vector: str
    incident_data: str
    incident_count: int
    dispute: str
    dispute_amount: int
    regulatory_matter: str
    founded: int
    cloud_region: str


TENANTS: tuple[Tenant, ...] = (
    Tenant(
        key="acme",
        company="Acme Logistics",
        product="Acme Freight Cloud",
        domain="acme.example",
        pay_multiplier=1.0,
        services=("billing-service", "route-planner", "telemetry-ingest"),
        customers=("Northwind Traders", "Contoso Retail", "Blue Yonder Foods", "Halvorsen Marine"),
        competitor="ShipStack",
        people={
            "engineering": "alice",
            "eng_lead": "raj",
            "finance": "bob",
            "cfo": "margaret",
            "hr": "nadia",
            "legal": "grace",
            "sales": "tom",
            "ceo": "elena",
        },
        names={
            "alice": "Alice Moreau",
            "raj": "Raj Iyer",
            "bob": "Bob Lindqvist",
            "margaret": "Margaret Osei",
            "nadia": "Nadia Petrova",
            "grace": "Grace Whitfield",
            "tom": "Tom Becker",
            "elena": "Elena Vasquez",
        },
        codename="Project Nightjar",
        target="Parcelwise Inc.",
        deal_summary=(
            "the proposed acquisition of Parcelwise Inc., a 40-person telematics start-up "
            "whose trailer sensors we already resell"
        ),
        deal_value=48_500_000,
        deal_cash=31_000_000,
        incident_id="SEC-2025-007",
        incident_vector=(
            "an AWS access key for the telemetry-ingest pipeline was committed to a public "
            "GitHub repository by a build script"
        ),
        incident_data="shipper contact names, e-mail addresses and delivery addresses",
        incident_count=2314,
        dispute="Roadrunner Carriers LLC v. Acme Logistics",
        dispute_amount=6_200_000,
        regulatory_matter=(
            "a Federal Motor Carrier Safety Administration inquiry into how long we keep "
            "driver-hours data"
        ),
        founded=2011,
        cloud_region="eu-west-1",
    ),
    Tenant(
        key="globex",
        company="Globex Payments",
        product="Globex Checkout API",
        domain="globex.example",
        pay_multiplier=1.12,
        services=("payments-gateway", "ledger-core", "webhook-relay"),
        customers=("Umbrella Outfitters", "Stark Home Goods", "Wayne Travel", "Kessler Pharmacy"),
        competitor="Stripewell",
        people={
            "engineering": "kenji",
            "eng_lead": "mei",
            "finance": "dmitri",
            "cfo": "hank",
            "hr": "priya",
            "legal": "oscar",
            "sales": "lena",
            "ceo": "victor",
        },
        names={
            "kenji": "Kenji Watanabe",
            "mei": "Mei Tanaka",
            "dmitri": "Dmitri Volkov",
            "hank": "Hank Scorpio",
            "priya": "Priya Raman",
            "oscar": "Oscar Delgado",
            "lena": "Lena Fischer",
            "victor": "Victor Hale",
        },
        codename="Project Cormorant",
        target="Tessellate Bank",
        deal_summary=(
            "the proposed sale of the company: Tessellate Bank, a regional bank, has offered "
            "to acquire Globex outright"
        ),
        deal_value=410_000_000,
        deal_cash=330_000_000,
        incident_id="SEC-2025-012",
        incident_vector=(
            "a credential-stuffing campaign against the merchant dashboard, which had no "
            "rate limit on the login endpoint"
        ),
        incident_data="merchant account settings, including payout bank account numbers",
        incident_count=412,
        dispute="Brightline Merchants Association v. Globex Payments (chargeback fees)",
        dispute_amount=9_750_000,
        regulatory_matter=(
            "the state money-transmitter licence examination by the Department of "
            "Financial Protection"
        ),
        founded=2016,
        cloud_region="us-east-1",
    ),
    Tenant(
        key="initech",
        company="Initech",
        product="Initech TPS",
        domain="initech.example",
        pay_multiplier=0.9,
        services=("payroll-engine", "timesheet-api", "report-builder"),
        customers=(
            "Chotchkie's Restaurants",
            "Penske Fabrication",
            "Dunder Paper",
            "Vandelay Imports",
        ),
        competitor="Paylocity Prime",
        people={
            "engineering": "samir",
            "eng_lead": "joanna",
            "finance": "bill",
            "cfo": "dom",
            "hr": "anne",
            "legal": "theo",
            "sales": "michael",
            "ceo": "lumbergh",
        },
        names={
            "samir": "Samir Nagheenanajar",
            "joanna": "Joanna Brandt",
            "bill": "Bill Porter",
            "dom": "Dom Portwood",
            "anne": "Anne Kowalski",
            "theo": "Theo Brandt",
            "michael": "Michael Bolton",
            "lumbergh": "Bill Lumbergh",
        },
        codename="Project Wren",
        target="Bramble Analytics",
        deal_summary=(
            "the proposed acquisition of Bramble Analytics, a workforce-analytics start-up "
            "with 60 payroll customers in common"
        ),
        deal_value=12_800_000,
        deal_cash=9_000_000,
        incident_id="SEC-2025-003",
        incident_vector=(
            "a storage bucket holding nightly payroll exports was made publicly listable "
            "by a mistaken Terraform change"
        ),
        incident_data=(
            "employee names, the last four digits of social security numbers and bank "
            "routing numbers"
        ),
        incident_count=37,
        dispute="Hernandez et al. v. Initech (unpaid overtime, collective action)",
        dispute_amount=3_400_000,
        regulatory_matter=(
            "a Department of Labor review of how Initech TPS calculates overtime for "
            "customers' employees"
        ),
        founded=2004,
        cloud_region="us-west-2",
    ),
)


def money(amount: float) -> str:
    """$1,234,000 style."""
    return f"${round(amount):,}"


def millions(amount: float) -> str:
    """$48.5M style."""
    return f"${amount / 1_000_000:.1f}M".replace(".0M", "M")


def band(tenant: Tenant, low: int, high: int) -> str:
    """A salary band scaled to the tenant, rounded to the nearest $1,000."""
    scale = tenant.pay_multiplier
    return f"{money(round(low * scale, -3))}-{money(round(high * scale, -3))}"


def date(rng: random.Random, year: int = 2025) -> str:
    return f"{year}-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}"


def tenant_facts(tenant: Tenant, rng: random.Random) -> Slots:
    """Figures that must agree across one tenant's documents (headcount, payroll...)."""
    headcount = rng.randint(160, 420)
    average_pay = 150_000 * tenant.pay_multiplier
    return {
        "headcount": str(headcount),
        "payroll": millions(round(headcount * average_pay / 12, -5)),
        "revenue": millions(rng.randint(38, 95) * 250_000),
        "gross_margin": str(rng.randint(68, 81)),
        "runway": str(rng.randint(19, 41)),
        "nrr": str(rng.randint(104, 128)),
        "merit": f"{rng.randint(25, 45) / 10:.1f}%",
        "ceo_salary": money(round(rng.randint(240, 320) * 1000 * tenant.pay_multiplier, -3)),
        "founded": str(tenant.founded),
        "regulatory_matter": tenant.regulatory_matter,
    }


def customer_figures(rng: random.Random) -> tuple[tuple[int, int], ...]:
    """(seats, annual fee) per customer, so every document about a customer agrees."""
    figures = []
    for _ in range(4):
        seats = rng.randint(8, 60) * 50
        figures.append((seats, round(seats * rng.choice([780, 900, 960, 1020]), -4)))
    return tuple(figures)


def base_slots(
    tenant: Tenant, index: int, rng: random.Random, figures: tuple[tuple[int, int], ...]
) -> Slots:
    """Facts every template may use: the tenant's, plus seeded per-document values."""
    people = tenant.people
    names = tenant.names
    services = tenant.services
    customers = tenant.customers
    quarter = rng.randint(1, 4)
    seats, arr = figures[index % 4]
    term = rng.choice([2, 3])
    discount = rng.choice([10, 12, 15, 18, 20, 22, 25])
    slots: Slots = {
        "company": tenant.company,
        "product": tenant.product,
        "domain": tenant.domain,
        "tenant": tenant.key,
        "service": services[index % 3],
        "other_service": services[(index + 1) % 3],
        "third_service": services[(index + 2) % 3],
        "customer": customers[index % 4],
        "other_customer": customers[(index + 1) % 4],
        "third_customer": customers[(index + 2) % 4],
        "competitor": tenant.competitor,
        "engineer": names[people["engineering"]],
        "eng_lead": names[people["eng_lead"]],
        "finance_manager": names[people["finance"]],
        "cfo": names[people["cfo"]],
        "hr_lead": names[people["hr"]],
        "counsel": names[people["legal"]],
        "sales_lead": names[people["sales"]],
        "ceo": names[people["ceo"]],
        "codename": tenant.codename,
        "target": tenant.target,
        "deal_summary": tenant.deal_summary,
        "deal_value": millions(tenant.deal_value),
        "deal_cash": millions(tenant.deal_cash),
        "deal_stock": millions(tenant.deal_value - tenant.deal_cash),
        "incident_id": tenant.incident_id,
        "incident_vector": tenant.incident_vector,
        "incident_data": tenant.incident_data,
        "incident_count": f"{tenant.incident_count:,}",
        "dispute": tenant.dispute,
        "dispute_amount": millions(tenant.dispute_amount),
        "region": tenant.cloud_region,
        "date": date(rng),
        "date2": date(rng),
        "quarter": f"Q{quarter}",
        "next_quarter": f"Q{quarter % 4 + 1}",
        "minutes": str(rng.randint(18, 190)),
        "pct": str(rng.randint(3, 38)),
        "small_pct": str(rng.randint(2, 9)),
        "error_rate": f"{rng.randint(4, 61)}%",
        "p99": str(rng.randint(350, 2400)),
        "affected": f"{rng.randint(40, 900):,}",
        "ticket": f"{tenant.key.upper()[:3]}-{rng.randint(1200, 9800)}",
        "pr": str(rng.randint(1800, 7400)),
        "version": f"{rng.randint(2, 5)}.{rng.randint(0, 19)}.{rng.randint(0, 9)}",
        "arr": millions(arr),
        "expansion": millions(round(arr * rng.choice([0.2, 0.3, 0.4]), -4)),
        "tcv": millions(round(arr * term * (100 - discount) / 100, -4)),
        "burn": millions(rng.randint(12, 48) * 100_000),
        "hires": str(rng.randint(8, 36)),
        "seats": f"{seats:,}",
        "discount": str(discount),
        "term": str(term),
        "liability": str(rng.choice([12, 18, 24])),
        "sla": rng.choice(["99.9", "99.95", "99.99"]),
        "credit": str(rng.choice([5, 10, 15, 25])),
        "weeks": str(rng.choice([16, 18, 20, 24])),
        "pto": str(rng.choice([20, 23, 25, 28])),
        "stipend": money(rng.choice([500, 750, 1000, 1200])),
        "per_diem": money(rng.choice([55, 65, 75, 90])),
        "hotel_cap": money(rng.choice([180, 220, 250, 275])),
        "approval": money(rng.choice([2500, 5000, 10000])),
        "amount": money(rng.randint(40, 900) * 1000),
        "pipeline": millions(rng.randint(30, 120) * 100_000),
        "bookings": millions(rng.randint(20, 60) * 100_000),
        "win_rate": str(rng.randint(18, 34)),
        "eng_band_l3": band(tenant, 118_000, 142_000),
        "eng_band_l4": band(tenant, 138_000, 166_000),
        "eng_band_l5": band(tenant, 165_000, 198_000),
        "eng_band_l6": band(tenant, 196_000, 236_000),
        "eng_band_l7": band(tenant, 232_000, 279_000),
        "sales_band_ae": band(tenant, 95_000, 120_000),
        "sales_band_sae": band(tenant, 125_000, 150_000),
        "ga_band_analyst": band(tenant, 78_000, 96_000),
        "ga_band_manager": band(tenant, 128_000, 156_000),
        "ga_band_director": band(tenant, 172_000, 214_000),
        "raise_a": money(round(rng.randint(150, 240) * 1000 * tenant.pay_multiplier, -3)),
        "raise_b": money(round(rng.randint(120, 190) * 1000 * tenant.pay_multiplier, -3)),
        "retention": money(rng.choice([40, 60, 75, 90]) * 1000),
        "severance": str(rng.choice([8, 10, 12, 16])),
        "layoff": str(rng.randint(14, 41)),
    }
    return slots


@dataclass(frozen=True)
class DocType:
    """A kind of document: where it lives, how secret it is, and its chunk templates.

    ``chunks`` is a list of chunk positions; each position is a tuple of alternative
    phrasings, one picked per document. ``count`` documents are made per tenant.
    """

    key: str
    dept: str
    level: int
    title: str
    source: str
    chunks: tuple[tuple[str, ...], ...]
    count: int = 1
    label: str | None = None
    pii: bool = False
    owner_role: str | None = None
    extra: Callable[[Tenant, int, random.Random], Slots] | None = None


TEMPLATES = Path(__file__).resolve().parent / "demo_corpus_templates.json"


def runbook_extra(tenant: Tenant, index: int, rng: random.Random) -> Slots:
    return {"precaution": RUNBOOK_STEPS[tenant.services[index % 3]]}


def postmortem_extra(tenant: Tenant, index: int, rng: random.Random) -> Slots:
    return {"root_cause": rng.choice(ROOT_CAUSES)}


# The "extra" slot makers a doc type in the templates file may name.
EXTRAS: dict[str, Callable[[Tenant, int, random.Random], Slots]] = {
    "runbook": runbook_extra,
    "postmortem": postmortem_extra,
}


def load_templates(
    path: Path = TEMPLATES,
) -> tuple[dict[str, str], tuple[str, ...], tuple[DocType, ...]]:
    """The runbook steps, root causes and doc types of the templates file, in order."""
    data = json.loads(path.read_text(encoding="utf-8"))
    doc_types = tuple(
        DocType(
            key=item["key"],
            dept=item["dept"],
            level=item["level"],
            title=item["title"],
            source=item["source"],
            chunks=tuple(tuple(variants) for variants in item["chunks"]),
            count=item.get("count", 1),
            label=item.get("label"),
            pii=item.get("pii", False),
            owner_role=item.get("owner_role"),
            extra=EXTRAS[item["extra"]] if "extra" in item else None,
        )
        for item in data["doc_types"]
    )
    return dict(data["runbook_steps"]), tuple(data["root_causes"]), doc_types


RUNBOOK_STEPS, ROOT_CAUSES, DOC_TYPES = load_templates()

DEPT_SHORT = {
    "engineering": "eng",
    "finance": "fin",
    "hr": "hr",
    "legal": "legal",
    "sales": "sales",
}


def slug(text: str) -> str:
    kept = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in kept.split("-") if part)


def documents() -> list[dict[str, object]]:
    """Every chunk record, in a fixed order."""
    rng = random.Random(SEED)
    records: list[dict[str, object]] = []
    for tenant in TENANTS:
        facts = tenant_facts(tenant, rng)
        figures = customer_figures(rng)
        for doc_type in DOC_TYPES:
            for index in range(doc_type.count):
                slots = {**facts, **base_slots(tenant, index, rng, figures)}
                slots["customer_slug"] = slug(slots["customer"])
                slots["competitor_slug"] = slug(slots["competitor"])
                if doc_type.extra is not None:
                    slots.update(doc_type.extra(tenant, index, rng))
                doc_id = (
                    f"{tenant.key}-{DEPT_SHORT[doc_type.dept]}-{doc_type.key.replace('_', '-')}"
                )
                if doc_type.count > 1:
                    doc_id += f"-{index + 1:02d}"
                owner = tenant.people[doc_type.owner_role or doc_type.dept]
                title = doc_type.title.format(**slots)
                source = doc_type.source.format(**slots)
                for chunk_index, variants in enumerate(doc_type.chunks):
                    text = rng.choice(variants).format(**slots)
                    metadata: dict[str, object] = {
                        "tenant": tenant.key,
                        "dept": doc_type.dept,
                        "level": doc_type.level,
                        "owner": owner,
                        "doc_id": doc_id,
                        "doc_type": doc_type.key,
                        "title": title,
                        "chunk_index": chunk_index,
                        "source": source,
                        "updated": slots["date"],
                        "pii": doc_type.pii,
                    }
                    if doc_type.label is not None:
                        metadata["label"] = doc_type.label
                    chunk_id = uuid.uuid5(NAMESPACE, f"{tenant.key}/{doc_id}/{chunk_index}")
                    records.append({"id": str(chunk_id), "text": text, "metadata": metadata})
    return records


def render() -> str:
    """The corpus file's exact content."""
    lines = [json.dumps(record, ensure_ascii=False) for record in documents()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed file")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the corpus")
    args = parser.parse_args(argv)
    content = render().encode("utf-8")
    count = content.count(b"\n")
    if args.check:
        current = args.output.read_bytes() if args.output.exists() else b""
        if current != content:
            print(f"{args.output} is out of date: run scripts/make_demo_corpus.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({count} chunks)")
        return 0
    args.output.write_bytes(content)
    print(f"wrote {count} chunks to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
