#!/usr/bin/env python3
"""Generate ragguard's demo corpus: ``ragguard/_demo/corpus.jsonl``.

A fictional B2B software group with three tenants (``acme``, ``globex``, ``initech``)
sharing one vector store. Every document type is a set of chunk templates (with a few
alternative phrasings each) filled from per-tenant facts and seeded random slots, then
cut into chunks with ``tenant``/``dept``/``level``/``owner``/... metadata. The output
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


RUNBOOK_STEPS = {
    "billing-service": "drain the invoice queue with `billing-ctl pause-invoicing` before restarting",
    "route-planner": "scale the solver pool to zero first so half-finished routes are not committed",
    "telemetry-ingest": "check Kafka consumer lag on the `trailer-events` topic before restarting",
    "payments-gateway": "fail traffic over to the secondary acquirer before restarting any pod",
    "ledger-core": "never restart during the 02:00 UTC settlement batch; wait for `batch_state=done`",
    "webhook-relay": "pause merchant retries with `relayctl hold --all` so no webhook is sent twice",
    "payroll-engine": "confirm no pay run is in `CALCULATING` state; a restart mid-run double-counts hours",
    "timesheet-api": "put the API in read-only mode with the `TS_READONLY` flag before restarting",
    "report-builder": "let running exports finish (check `/admin/jobs`) or customers get truncated files",
}


def runbook_extra(tenant: Tenant, index: int, rng: random.Random) -> Slots:
    return {"precaution": RUNBOOK_STEPS[tenant.services[index % 3]]}


ROOT_CAUSES = (
    "a database migration added an index without `CONCURRENTLY`, locking the orders table",
    "an expired TLS certificate on the internal load balancer that nobody was alerted about",
    "a retry storm: clients retried without backoff after a 30-second dependency blip",
    "a config push that set the connection pool size to 5 instead of 50",
    "the disk on the primary Postgres node filled up with WAL segments after replication stalled",
    "a feature flag rolled out to 100% instead of 5% because of a typo in the targeting rule",
)


def postmortem_extra(tenant: Tenant, index: int, rng: random.Random) -> Slots:
    return {"root_cause": rng.choice(ROOT_CAUSES)}


DOC_TYPES: tuple[DocType, ...] = (
    # ---------------------------------------------------------------- engineering
    DocType(
        key="runbook",
        dept="engineering",
        level=1,
        count=3,
        title="On-call runbook: {service}",
        source="confluence://{tenant}/ENG/runbooks/{service}",
        extra=runbook_extra,
        chunks=(
            (
                "On-call runbook for {service} ({product}). When PagerDuty fires "
                "`{service}-high-error-rate` (5xx above 2% for 5 minutes) or "
                "`{service}-latency-p99` (p99 above {p99} ms), acknowledge the page within 5 "
                "minutes and open an incident channel named #inc-{service}-<date>.",
                "Runbook: {service}. Alerts that page the on-call engineer: error rate above "
                "2% for five minutes, p99 latency above {p99} ms, or the health check failing "
                "on two or more pods. Acknowledge within five minutes; the secondary on-call "
                "is paged automatically after fifteen.",
            ),
            (
                "Diagnosis for {service}: open the Grafana dashboard '{service} / golden "
                "signals', check the last deploy in Argo CD, and look for errors from "
                "{other_service}, its main dependency. If the error rate started within 10 "
                "minutes of a deploy, roll back first and investigate later.",
                "First checks when {service} misbehaves: was there a deploy in the last hour "
                "(Argo CD history), is {other_service} healthy, are database connections "
                "exhausted (`pg_stat_activity`)? Most pages in the last quarter were bad "
                "deploys; rolling back is always safe.",
            ),
            (
                "Restarting {service} safely: {precaution}. Then run `kubectl rollout restart "
                "deployment/{service} -n prod` and watch the pods come back healthy. To roll "
                "back a bad deploy use `argocd app rollback {service}`. Escalate to "
                "{eng_lead} if the service is not healthy within 30 minutes.",
                "To restart {service}: {precaution}; then `kubectl rollout restart "
                "deployment/{service} -n prod`. Rollback: `argocd app rollback {service}` to "
                "the previous revision. If customers are affected for more than 30 minutes, "
                "page the incident commander and tell support to post on the status page.",
            ),
        ),
    ),
    DocType(
        key="postmortem",
        dept="engineering",
        level=1,
        count=2,
        title="Incident postmortem: {service} outage {date}",
        source="confluence://{tenant}/ENG/postmortems/{date}-{service}",
        extra=postmortem_extra,
        chunks=(
            (
                "Postmortem, {date}: {service} was degraded for {minutes} minutes. Peak error "
                "rate {error_rate}; {affected} customer requests failed, mostly from "
                "{customer}. Severity SEV-2. No data was lost. This document is blameless.",
                "Incident summary ({date}, SEV-2): for {minutes} minutes {service} returned "
                "errors to about {error_rate} of requests. {customer} opened a priority ticket "
                "({ticket}). Customer impact: {affected} failed requests, no data loss.",
            ),
            (
                "Root cause: {root_cause}. Detection took 11 minutes because the alert "
                "threshold was tuned for daytime traffic. Timeline: page at T+0, rollback "
                "started at T+14, error rate back to baseline at T+{minutes} minutes.",
                "What happened: {root_cause}. The on-call engineer was paged, tried a restart "
                "(which did not help), then rolled back; recovery completed {minutes} minutes "
                "after the first alert.",
            ),
            (
                "Action items: add a pre-deploy check for the root cause above ({ticket}, "
                "owner {engineer}); lower the paging threshold for {service}; add a runbook "
                "step for {other_service} dependency failures; review alert routing in the "
                "next reliability review.",
                "Follow-ups ({ticket}): a CI guard against this class of change, a synthetic "
                "check on {service}, and a game day for {other_service} failover, owned by "
                "{engineer} and due before the end of {next_quarter}.",
            ),
        ),
    ),
    DocType(
        key="security_incident",
        dept="engineering",
        level=3,
        label="legal_hold",
        pii=True,
        owner_role="eng_lead",
        title="Security incident report {incident_id} (privileged & confidential)",
        source="gdrive://{tenant}/security/incidents/{incident_id}.docx",
        chunks=(
            (
                "PRIVILEGED & CONFIDENTIAL, prepared at the direction of counsel. Security "
                "incident {incident_id}: {incident_vector}. The exposure was detected on "
                "{date} and contained the same day. Under legal hold: do not delete or edit.",
            ),
            (
                "{incident_id} forensics: access logs show an unknown party read "
                "{incident_data} for {incident_count} customer accounts from an IP range in a "
                "hosting provider. Customer data was exposed; we have no evidence it was "
                "published. Regulators in two jurisdictions must be notified within 72 hours.",
            ),
            (
                "{incident_id} remediation: credentials rotated, the affected storage locked "
                "down, secret scanning enforced in CI. Customer notification letters drafted "
                "by {counsel}; cyber-insurance carrier informed. Do not discuss the incident "
                "outside the incident channel until counsel approves the statement.",
            ),
        ),
    ),
    DocType(
        key="security_followup",
        dept="engineering",
        level=1,
        label="legal_hold",
        title="Engineering follow-ups for {incident_id}",
        source="jira://{tenant}/SEC/{incident_id}",
        chunks=(
            (
                "Follow-up tickets for security incident {incident_id} (legal hold: keep all "
                "comments). Rotate every long-lived cloud credential used by {service} and "
                "{other_service}; move them to short-lived workload identity. Owner "
                "{engineer}.",
            ),
            (
                "{incident_id} hardening backlog: turn on secret scanning for every "
                "repository, block public storage buckets with an organisation policy, add "
                "login rate limits and alerting on credential failures. Status is reported "
                "weekly to {counsel} while the legal hold is in place.",
            ),
        ),
    ),
    DocType(
        key="architecture",
        dept="engineering",
        level=1,
        count=2,
        title="Architecture overview: {service}",
        source="github://{tenant}/architecture/docs/{service}.md",
        chunks=(
            (
                "Architecture: {service} is a stateless Go service behind the internal "
                "gateway, running on Kubernetes in {region} with three replicas minimum. It "
                "owns its Postgres schema and talks to {other_service} over gRPC with a "
                "2-second deadline.",
                "{service} design notes: Python (FastAPI) workers behind an Envoy sidecar in "
                "{region}; state lives in Postgres 15 and Redis for idempotency keys. "
                "Downstream calls to {other_service} are retried twice with jittered backoff.",
            ),
            (
                "Data flow for {service}: events are published to Kafka and consumed by "
                "{third_service}; nightly snapshots go to the analytics warehouse. The SLO is "
                "{sla}% monthly availability and p99 below {p99} ms.",
                "{service} dependencies and SLOs: depends on {other_service} and the identity "
                "provider; {third_service} depends on it. Target availability {sla}%, "
                "measured by synthetic probes every 30 seconds.",
            ),
        ),
    ),
    DocType(
        key="roadmap",
        dept="engineering",
        level=2,
        owner_role="eng_lead",
        title="{product} engineering roadmap FY2026",
        source="gdrive://{tenant}/engineering/roadmap-fy2026.pptx",
        chunks=(
            (
                "{product} roadmap FY2026, H1: multi-region active-active for {service}, "
                "SOC 2 Type II renewal, and a public GraphQL API. Headcount ask: {hires} "
                "engineers. Not for customers: dates are internal targets.",
            ),
            (
                "Roadmap H2: usage-based pricing support in {other_service}, an AI assistant "
                "in the customer console, and deprecating the v1 REST API (customers get 12 "
                "months' notice). We expect to overtake {competitor} on integrations by Q4.",
            ),
            (
                "Roadmap risks: the data-residency work for EU customers could slip a quarter; "
                "{third_service} needs a rewrite before it can scale past 3x today's load. "
                "Budget assumption: {hires} hires, no contractors after Q2.",
            ),
        ),
    ),
    DocType(
        key="developer_docs",
        dept="engineering",
        level=0,
        title="{product} developer documentation",
        source="https://docs.{domain}/api/overview",
        chunks=(
            (
                "Developer documentation for {product}: authenticate with an API key in the `Authorization: "
                "Bearer` header; all endpoints are served over HTTPS from api.{domain}. Rate "
                "limits are 100 requests per second per key; responses include "
                "`X-RateLimit-Remaining`.",
            ),
            (
                "Webhooks: {product} signs every webhook with HMAC-SHA256 in the "
                "`X-Signature` header; verify it before trusting the payload. Failed "
                "deliveries are retried with exponential backoff for 24 hours.",
            ),
            (
                "Status and support: live availability is published at status.{domain}. Our "
                "public uptime commitment is {sla}%. Breaking API changes are announced 12 "
                "months ahead in the changelog.",
            ),
        ),
    ),
    DocType(
        key="oncall_policy",
        dept="engineering",
        level=1,
        owner_role="eng_lead",
        title="On-call policy",
        source="confluence://{tenant}/ENG/oncall-policy",
        chunks=(
            (
                "On-call policy: every backend engineer joins the rotation after onboarding; "
                "shifts are one week, handed over on Mondays at 10:00 local time. On-call "
                "engineers receive a {stipend} stipend per week on call.",
            ),
            (
                "Paging expectations: acknowledge within 5 minutes, be at a laptop within 15. "
                "After a night with more than two pages, take the next morning off. Swap "
                "shifts in PagerDuty and tell the team channel.",
            ),
        ),
    ),
    DocType(
        key="pentest",
        dept="engineering",
        level=2,
        owner_role="eng_lead",
        title="Penetration test findings {date}",
        source="gdrive://{tenant}/security/pentest-{date}.pdf",
        chunks=(
            (
                "External penetration test, {date}: 2 high, 5 medium findings. High: "
                "server-side request forgery in the {service} PDF export lets an "
                "authenticated user reach the cloud metadata endpoint. Fix before the SOC 2 "
                "audit.",
            ),
            (
                "Pentest high finding 2: {other_service} accepts JWTs signed with the `none` "
                "algorithm on one legacy route. Mediums: missing HSTS, verbose error pages, "
                "outdated TLS ciphers. Owner for remediation: {eng_lead}.",
            ),
        ),
    ),
    # ---------------------------------------------------------------- finance
    DocType(
        key="board_minutes",
        dept="finance",
        level=3,
        label="board_confidential",
        owner_role="cfo",
        title="Board of directors minutes, {date}",
        source="gdrive://{tenant}/board/minutes-{date}.docx",
        chunks=(
            (
                "Board minutes, {date} (strictly confidential). {cfo} presented "
                "{codename}, the codename for {deal_summary}. The board approved "
                "proceeding at an offer price of {deal_value} (non-binding).",
            ),
            (
                "{codename} terms discussed: {deal_value} total, {deal_cash} in cash and "
                "{deal_stock} in stock, with an earn-out tied to retention of key "
                "engineers. Exclusivity for 45 days. Only the deal team may know the "
                "codename's meaning; insider-trading rules apply.",
                "{codename} valuation: {deal_value} in total ({deal_cash} cash at signing, "
                "the rest in stock or deferred). Bankers expect a counter-offer; the walk-away "
                "price is 10% away from the current terms. Do not mention {target} by name "
                "in e-mail.",
            ),
            (
                "Other business: {quarter} revenue of {revenue} (gross margin "
                "{gross_margin}%), cash runway {runway} months. The CEO, {ceo}, asked for a "
                "communications plan for employees should {codename} be announced.",
            ),
        ),
    ),
    DocType(
        key="forecast",
        dept="finance",
        level=2,
        count=2,
        title="{quarter} FY2025 financial forecast",
        source="gdrive://{tenant}/finance/forecast/{quarter}-fy2025.xlsx",
        chunks=(
            (
                "{quarter} forecast: revenue {revenue}, net revenue retention {nrr}%, gross "
                "margin {gross_margin}%. Monthly burn {burn}; runway {runway} months at the "
                "current plan. Largest risk: renewal of {customer} ({arr} ARR).",
                "Financial forecast for {quarter}: we expect {revenue} in revenue and a "
                "{gross_margin}% gross margin. Net burn {burn} per month. Two renewals "
                "({customer}, {other_customer}) account for most of the variance.",
            ),
            (
                "Forecast assumptions: {hires} net new hires, cloud spend flat, a {merit} "
                "merit increase in April. Downside case (loss of {customer}) shortens "
                "runway by {small_pct} months.",
            ),
        ),
    ),
    DocType(
        key="budget",
        dept="finance",
        level=2,
        owner_role="cfo",
        title="FY2026 operating budget",
        source="gdrive://{tenant}/finance/budget-fy2026.xlsx",
        chunks=(
            (
                "FY2026 budget: total payroll {payroll} per month for {headcount} employees; "
                "engineering is 46% of payroll, sales 24%. Cloud infrastructure budget is "
                "flat year on year.",
            ),
            (
                "Budget by department: engineering may add {hires} roles, sales 6 account "
                "executives, G&A no new roles. Any hire above band needs CFO approval "
                "({cfo}).",
            ),
            (
                "Budget cuts if bookings miss plan by more than 10%: freeze backfills, halve "
                "the travel budget, and delay the office move. A reduction in force of "
                "{layoff} roles is modelled but not approved.",
            ),
        ),
    ),
    DocType(
        key="expense_policy",
        dept="finance",
        level=1,
        title="Travel and expense policy",
        source="confluence://{tenant}/FIN/expense-policy",
        chunks=(
            (
                "Expense policy: book travel through the travel portal. Economy class for "
                "flights under 6 hours. Hotels up to {hotel_cap} per night, meals covered by "
                "a {per_diem} daily per diem.",
            ),
            (
                "Approvals: expenses above {approval} need your manager and a finance "
                "approver. Submit receipts within 30 days; the company card is for business "
                "expenses only.",
            ),
            (
                "Not reimbursable: alcohol outside client dinners, traffic fines, upgrades, "
                "and personal travel extensions. Questions go to {finance_manager} in "
                "finance.",
            ),
        ),
    ),
    DocType(
        key="revenue_review",
        dept="finance",
        level=3,
        label="legal_hold",
        owner_role="cfo",
        title="Audit committee review: revenue recognition",
        source="gdrive://{tenant}/finance/audit-committee/revenue-review.docx",
        chunks=(
            (
                "Audit committee review (legal hold, privileged): {amount} of revenue from "
                "multi-year deals with {customer} was recognised upfront in {quarter} instead "
                "of ratably. External auditors have been informed.",
            ),
            (
                "Revenue review next steps: restate {quarter}, interview the deal desk and "
                "{sales_lead}, preserve all e-mail about the {customer} contract. Do not "
                "delete documents while the hold is active.",
            ),
        ),
    ),
    DocType(
        key="payroll_summary",
        dept="finance",
        level=3,
        pii=True,
        title="Payroll register summary",
        source="s3://{tenant}-finance-restricted/payroll/register-{date}.csv",
        chunks=(
            (
                "Payroll register, {date}: gross payroll {payroll} for the month. Top five "
                "earners are the executive team; the CEO's base salary is {ceo_salary} plus "
                "bonus. Bank file sent to the payroll provider on the 25th.",
            ),
            (
                "Payroll reconciliation: variance of {amount} against budget from the "
                "April merit cycle ({merit}) and two sign-on bonuses in engineering. "
                "Severance payments from the last reorganisation are included.",
            ),
        ),
    ),
    DocType(
        key="accounts_payable",
        dept="finance",
        level=1,
        title="Accounts payable runbook",
        source="confluence://{tenant}/FIN/ap-runbook",
        chunks=(
            (
                "Accounts payable: vendor invoices are paid net 30 in the Thursday payment "
                "run. New vendors need a W-9 or VAT number and bank details confirmed by "
                "phone call to a known number, never from the invoice.",
            ),
            (
                "Vendor bank changes are a fraud risk: any request to change a vendor's bank "
                "account must be verified by calling the vendor and approved by "
                "{finance_manager}.",
            ),
        ),
    ),
    DocType(
        key="investor_faq",
        dept="finance",
        level=0,
        title="{company} company facts",
        source="https://www.{domain}/about",
        chunks=(
            (
                "About {company}: founded in {founded}, {headcount} employees, offices in three "
                "countries. {product} serves more than 1,200 business customers.",
            ),
            (
                "{company} is privately held and backed by growth investors. We do not "
                "comment on rumours about acquisitions or funding. Press contact: "
                "press@{domain}.",
            ),
        ),
    ),
    # ---------------------------------------------------------------- hr
    DocType(
        key="salary_bands",
        dept="hr",
        level=3,
        owner_role="hr",
        title="Salary bands FY2025",
        source="s3://{tenant}-hr-restricted/comp/salary-bands-fy2025.xlsx",
        chunks=(
            (
                "Salary bands FY2025, engineering (base salary, US): Software Engineer L3 "
                "{eng_band_l3}; Software Engineer L4 {eng_band_l4}; Senior Software Engineer "
                "L5 {eng_band_l5}. Restricted: HR and compensation committee only.",
            ),
            (
                "Engineering salary bands, senior levels: Staff Engineer L6 {eng_band_l6}; "
                "Principal Engineer L7 {eng_band_l7}. Offers above the band midpoint need "
                "VP approval; above the maximum, CFO approval.",
            ),
            (
                "Sales compensation bands FY2025: Account Executive base {sales_band_ae} "
                "with 50/50 on-target split; Senior AE base {sales_band_sae}. Accelerators "
                "of 1.5x above 100% of quota.",
            ),
            (
                "G&A salary bands: Analyst {ga_band_analyst}; Manager {ga_band_manager}; "
                "Director {ga_band_director}. Merit budget for April is {merit} of payroll; "
                "equity refreshes only for top-rated employees.",
            ),
        ),
    ),
    DocType(
        key="comp_adjustments",
        dept="hr",
        level=3,
        pii=True,
        owner_role="hr",
        title="Off-cycle compensation adjustments",
        source="s3://{tenant}-hr-restricted/comp/off-cycle-{date}.xlsx",
        chunks=(
            (
                "Off-cycle adjustments approved {date}: {engineer} raised to {raise_a} base "
                "(counter-offer against {competitor}); {sales_lead} raised to {raise_b}. "
                "Retention bonus of {retention} for {eng_lead}, vesting over 12 months.",
            ),
            (
                "Pay-equity review: three women in engineering at L4 were paid below the band "
                "midpoint; adjustments of 6-9% approved effective {date2}. Confidential: do "
                "not share individual figures with managers.",
            ),
        ),
    ),
    DocType(
        key="benefits_faq",
        dept="hr",
        level=0,
        title="Benefits FAQ",
        source="https://handbook.{domain}/benefits",
        chunks=(
            (
                "Parental leave: all parents get {weeks} weeks of fully paid parental leave, "
                "which can be taken in up to three blocks within the child's first year. "
                "Adoption and surrogacy are covered the same way.",
            ),
            (
                "Paid time off: {pto} days of vacation per year plus public holidays, and "
                "unlimited sick days. Unused vacation carries over up to 5 days.",
            ),
            (
                "Health and wellbeing: medical, dental and vision insurance with the company "
                "paying 90% of premiums; a {stipend} yearly wellbeing allowance; an employee "
                "assistance programme available 24/7.",
            ),
        ),
    ),
    DocType(
        key="handbook",
        dept="hr",
        level=0,
        title="Employee handbook: working at {company}",
        source="https://handbook.{domain}/working-here",
        chunks=(
            (
                "Working hours: core collaboration hours are 10:00-15:00 local time; "
                "otherwise schedule your day as you like. Meetings are avoided on Friday "
                "afternoons.",
            ),
            (
                "Code of conduct: treat colleagues and customers with respect. Report "
                "harassment or discrimination to your manager, HR ({hr_lead}) or the "
                "anonymous ethics hotline.",
            ),
        ),
    ),
    DocType(
        key="onboarding",
        dept="hr",
        level=1,
        title="New-hire onboarding checklist",
        source="confluence://{tenant}/HR/onboarding",
        chunks=(
            (
                "Onboarding week 1: laptop setup with IT, security training (mandatory, "
                "within 5 days), meet your onboarding buddy, read the handbook, and get "
                "access to Slack, Google Workspace and the HR system.",
            ),
            (
                "Onboarding weeks 2-4: shadow your team's rituals, ship a first small change "
                "or deliverable, and set 90-day goals with your manager. Engineers join the "
                "on-call rotation after 8 weeks.",
            ),
        ),
    ),
    DocType(
        key="calibration",
        dept="hr",
        level=2,
        owner_role="hr",
        title="Performance calibration guide",
        source="gdrive://{tenant}/hr/calibration-guide.docx",
        chunks=(
            (
                "Calibration guide: ratings are Exceeds, Meets, Partially Meets, Does Not "
                "Meet. Target distribution: at most 20% Exceeds, and every Does Not Meet "
                "needs a documented performance plan.",
            ),
            (
                "Calibration rules: merit increases follow ratings (Exceeds up to twice the "
                "{merit} budget, Partially Meets zero). Managers must not tell employees their "
                "rating before calibration closes.",
            ),
        ),
    ),
    DocType(
        key="er_investigation",
        dept="hr",
        level=3,
        label="legal_hold",
        pii=True,
        owner_role="hr",
        title="Employee relations investigation ER-{ticket}",
        source="gdrive://{tenant}/hr/er/ER-{ticket}.docx",
        chunks=(
            (
                "Employee relations investigation ER-{ticket} (privileged, legal hold): a "
                "complaint of harassment by a sales director against two account executives. "
                "Interviews held {date} with HR ({hr_lead}) and outside counsel.",
            ),
            (
                "ER-{ticket} findings: the complaint is substantiated in part. Recommended "
                "outcome: final written warning and removal of people-management duties. "
                "Preserve all messages; litigation is possible.",
            ),
        ),
    ),
    DocType(
        key="remote_policy",
        dept="hr",
        level=1,
        title="Remote and hybrid work policy",
        source="confluence://{tenant}/HR/remote-work",
        chunks=(
            (
                "Remote work: employees may work remotely from their country of employment. "
                "Working from another country for more than 30 days a year needs HR approval "
                "for tax and immigration reasons.",
            ),
            (
                "Home-office allowance: a one-time {stipend} for equipment plus internet "
                "reimbursement. Hybrid teams meet in the office at least one week per "
                "quarter.",
            ),
        ),
    ),
    DocType(
        key="reorg_plan",
        dept="hr",
        level=3,
        owner_role="hr",
        title="Reorganisation plan (draft)",
        source="gdrive://{tenant}/hr/reorg-draft.docx",
        chunks=(
            (
                "Reorganisation draft (do not forward): eliminate {layoff} roles, mostly in "
                "support and marketing, in {next_quarter}. Severance: {severance} weeks of "
                "base pay plus 2 weeks per year of service.",
            ),
            (
                "Reorg communications: managers are told 48 hours before the announcement; "
                "affected employees meet HR ({hr_lead}) the same day. Legal review of the "
                "selection criteria by {counsel} is pending.",
            ),
        ),
    ),
    # ---------------------------------------------------------------- legal
    DocType(
        key="msa",
        dept="legal",
        level=2,
        count=2,
        label="customer_confidential",
        title="Master services agreement: {customer}",
        source="docusign://{tenant}/contracts/msa-{customer_slug}.pdf",
        chunks=(
            (
                "Master services agreement between {company} and {customer}, signed {date}. "
                "Term {term} years, {seats} seats, annual fee {arr}. Auto-renews unless "
                "either party gives 90 days' notice.",
            ),
            (
                "{customer} MSA, liability: our aggregate liability is capped at {liability} "
                "months of fees, except for breaches of confidentiality and data protection, "
                "which are capped at 3x annual fees.",
            ),
            (
                "{customer} MSA, service levels: {sla}% monthly uptime; service credits of "
                "{credit}% of the monthly fee per 0.1% below target, up to 30%. Termination "
                "for convenience is not allowed.",
            ),
        ),
    ),
    DocType(
        key="nda_playbook",
        dept="legal",
        level=1,
        owner_role="legal",
        title="NDA and contracting playbook",
        source="confluence://{tenant}/LEGAL/nda-playbook",
        chunks=(
            (
                "NDA playbook: use our mutual NDA template; sales may sign it without legal "
                "review if no clause was changed. Any change to term, governing law or "
                "non-solicitation goes to {counsel}.",
            ),
            (
                "Contract redlines: never accept unlimited liability, audit rights more than "
                "once a year, or most-favoured-customer pricing. Escalate any customer "
                "request for source-code escrow.",
            ),
        ),
    ),
    DocType(
        key="litigation_memo",
        dept="legal",
        level=3,
        label="legal_hold",
        owner_role="legal",
        title="Litigation memo: {dispute}",
        source="gdrive://{tenant}/legal/litigation/memo-{date}.docx",
        chunks=(
            (
                "Attorney-client privileged. {dispute}: exposure estimated at "
                "{dispute_amount}. Litigation hold issued {date} to engineering, finance and "
                "sales; all custodians acknowledged.",
            ),
            (
                "Strategy for {dispute}: our position is strong on liability but weak on the "
                "e-mail record. Outside counsel recommends early mediation with a settlement "
                "authority of up to half of {dispute_amount}.",
            ),
            (
                "Reserve for {dispute}: the CFO ({cfo}) booked a legal reserve; do not "
                "disclose it to the counterparty or auditors beyond what counsel approves.",
            ),
        ),
    ),
    DocType(
        key="privacy_notice",
        dept="legal",
        level=0,
        title="{company} privacy notice",
        source="https://www.{domain}/privacy",
        chunks=(
            (
                "Privacy notice: {company} processes customer data only to provide "
                "{product}. Data is hosted in {region}; we never sell personal data. Contact "
                "our data protection officer at privacy@{domain}.",
            ),
            (
                "Your rights: you can ask us to access, correct or delete your personal data. "
                "We answer requests within 30 days. Security incidents affecting your data are "
                "notified as the law requires.",
            ),
        ),
    ),
    DocType(
        key="regulatory",
        dept="legal",
        level=3,
        owner_role="legal",
        title="Regulatory correspondence log",
        source="gdrive://{tenant}/legal/regulatory/log.xlsx",
        chunks=(
            (
                "Regulatory log: the data protection authority asked on {date} for details of "
                "incident {incident_id}; response due in 14 days. {counsel} owns the answer; "
                "engineering to supply the timeline.",
            ),
            (
                "Open regulatory matters: {regulatory_matter}; a tax audit of FY2023 R&D "
                "credits. "
                "Potential fines are not yet reserved. Board informed at the last meeting.",
            ),
        ),
    ),
    DocType(
        key="subprocessors",
        dept="legal",
        level=0,
        title="Sub-processors and data processing agreement",
        source="https://www.{domain}/legal/subprocessors",
        chunks=(
            (
                "Sub-processors: {company} uses AWS ({region}) for hosting, Postmark for "
                "e-mail delivery and Zendesk for support. Customers are told 30 days before a "
                "new sub-processor is added.",
            ),
            (
                "Data processing agreement: our standard DPA includes the EU standard "
                "contractual clauses and is available to every customer on request at "
                "legal@{domain}.",
            ),
        ),
    ),
    DocType(
        key="ip_policy",
        dept="legal",
        level=1,
        owner_role="legal",
        title="Open-source and IP policy",
        source="confluence://{tenant}/LEGAL/open-source",
        chunks=(
            (
                "Open-source policy: MIT, BSD and Apache-2.0 dependencies are pre-approved. "
                "GPL and AGPL code must not be linked into {product} without legal approval.",
            ),
            (
                "Inventions and trademarks: work created on the job belongs to {company}. "
                "Use the {product} trademark only as in the brand guide; report suspected "
                "infringement to {counsel}.",
            ),
        ),
    ),
    # ---------------------------------------------------------------- sales
    DocType(
        key="pricing",
        dept="sales",
        level=0,
        title="{product} pricing",
        source="https://www.{domain}/pricing",
        chunks=(
            (
                "{product} pricing: Starter plan $49 per seat per month, Business $89, "
                "Enterprise on request. Annual billing saves 15%. All plans include the API "
                "and standard support.",
            ),
            (
                "Enterprise plan: SSO, audit logs, a {sla}% uptime SLA, data residency in "
                "{region}, and a named customer success manager. Volume pricing starts at 500 "
                "seats.",
            ),
            (
                "Free trial: 14 days of the Business plan, no credit card needed. Non-profits "
                "and schools get 30% off any plan.",
            ),
        ),
    ),
    DocType(
        key="public_faq",
        dept="sales",
        level=0,
        title="{product} FAQ",
        source="https://www.{domain}/faq",
        chunks=(
            (
                "Can I cancel anytime? Monthly plans can be cancelled at any time; annual "
                "plans are refunded pro rata only if we breach the SLA.",
            ),
            (
                "Is {product} secure? Yes: SOC 2 Type II, encryption in transit and at rest, "
                "and yearly penetration tests. Our security page explains how to report a "
                "vulnerability.",
            ),
            (
                "Do you integrate with our tools? {product} connects to Salesforce, Slack, "
                "SAP and 60 more systems; a REST API and webhooks cover the rest.",
            ),
        ),
    ),
    DocType(
        key="sales_playbook",
        dept="sales",
        level=1,
        owner_role="sales",
        title="Sales playbook",
        source="confluence://{tenant}/SALES/playbook",
        chunks=(
            (
                "Sales playbook: qualify with MEDDICC. A deal enters Stage 3 only with an "
                "identified economic buyer and a mutual action plan. Typical enterprise cycle "
                "is 90-120 days.",
            ),
            (
                "Handling the price objection: lead with time saved, not features. Offer the "
                "annual prepay discount before any custom discount; never discount in the "
                "first call.",
            ),
            (
                "Competing with {competitor}: they win on price for small teams; we win on "
                "integrations and support. Ask prospects about their last outage with "
                "{competitor}.",
            ),
        ),
    ),
    DocType(
        key="discount_matrix",
        dept="sales",
        level=2,
        owner_role="sales",
        title="Discount approval matrix",
        source="gdrive://{tenant}/sales/discount-matrix.xlsx",
        chunks=(
            (
                "Discount approval matrix: account executives may give up to 10% on annual "
                "contracts; up to {discount}% with the sales director ({sales_lead}); above "
                "that the CFO must approve. Multi-year enterprise renewals may go to 30% for "
                "a {term}-year prepaid term.",
            ),
            (
                "Discount floor: never go below $41 per seat per month on Business or $60 on "
                "Enterprise; the deal desk rejects quotes under the floor automatically. "
                "Free months count as discount.",
            ),
        ),
    ),
    DocType(
        key="pipeline_review",
        dept="sales",
        level=2,
        count=2,
        owner_role="sales",
        title="{quarter} pipeline review",
        source="gdrive://{tenant}/sales/pipeline-{quarter}.pptx",
        chunks=(
            (
                "{quarter} pipeline review: {pipeline} weighted pipeline against a bookings "
                "target of {bookings}; win rate {win_rate}%. Commit deals: {customer} expansion "
                "({expansion}), {other_customer} new logo.",
                "Pipeline for {quarter}: commit {pipeline}, best case 20% higher. Biggest "
                "deals are {customer} ({expansion} expansion) and {third_customer}. {competitor} is in three "
                "of our top ten opportunities.",
            ),
            (
                "Deals at risk this quarter: {other_customer} is evaluating {competitor}; "
                "{third_customer} pushed to {next_quarter} after a budget freeze. Forecast "
                "call every Monday with {sales_lead}.",
            ),
        ),
    ),
    DocType(
        key="strategic_deal",
        dept="sales",
        level=3,
        label="customer_confidential",
        owner_role="sales",
        title="Strategic deal terms: {customer}",
        source="gdrive://{tenant}/sales/strategic/{customer_slug}.docx",
        chunks=(
            (
                "Strategic deal with {customer}: {term}-year renewal at {tcv} total "
                "contract value with a {discount}% discount and most-favoured-customer "
                "pricing, approved by the CEO as an exception.",
            ),
            (
                "{customer} side letter: a free pilot of the AI assistant and a commitment "
                "to build two custom integrations in {next_quarter}. Not to be shared with "
                "other customers or mentioned in case studies.",
            ),
        ),
    ),
    DocType(
        key="account_plan",
        dept="sales",
        level=2,
        count=2,
        owner_role="sales",
        title="Account plan: {customer}",
        source="salesforce://{tenant}/accounts/{customer_slug}",
        chunks=(
            (
                "Account plan for {customer}: {seats} seats, {arr} ARR, renewal on {date}. "
                "Health score amber: usage dropped {pct}% after their reorganisation. "
                "Executive sponsor left in {quarter}.",
            ),
            (
                "{customer} churn risk: they asked {competitor} for a quote. Plan: executive "
                "business review, a {discount}% renewal discount if they commit to {term} "
                "years, and a success plan owned by {sales_lead}.",
            ),
        ),
    ),
    DocType(
        key="case_study",
        dept="sales",
        level=0,
        title="Customer story: {customer}",
        source="https://www.{domain}/customers/{customer_slug}",
        chunks=(
            (
                "Customer story: {customer} moved to {product} in 2023 and cut manual work by "
                '{pct}%. "We went live in six weeks," says their operations director.',
            ),
            (
                "How {customer} uses {product}: automated workflows, integrations with their "
                "ERP, and dashboards for management. They now run {seats} seats across four "
                "countries.",
            ),
        ),
    ),
    DocType(
        key="battlecard",
        dept="sales",
        level=1,
        owner_role="sales",
        title="Competitive battlecard: {competitor}",
        source="confluence://{tenant}/SALES/battlecards/{competitor_slug}",
        chunks=(
            (
                "Battlecard {competitor}: cheaper list price, weak API, no data residency "
                "options. Their support is e-mail only outside the US.",
            ),
            (
                "Landmines to lay against {competitor}: ask about uptime history, SSO "
                "pricing, and the cost of their professional services. Our win rate against "
                "them is {win_rate}% this year.",
            ),
        ),
    ),
)

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
