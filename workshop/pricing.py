"""Price tables and pure cost functions: the talk's 2019 prices and current us-east-1 ones, with sources.

Everything here is numbers in, numbers out: no AWS call, no clock. Each price table is a frozen
``Prices`` with the date the prices were read and where (``sources``), so a notebook can say which
prices a figure uses. ``compare`` rebuilds the talk's monthly comparison (slides 134-136)::

    >>> [row.total for row in compare(30_000_000, 200, 192, TALK_2019)]
    [129.75, 45.78, 88.97]

How the talk's figures are reproduced to the cent (a reconstruction: the talk shows results, not inputs):

* Lambda, slide 125: 30 M x $0.0000002 = $6 and 30 M x 0.200 s x 192/1024 GB x $0.00001667 =
  $18.75375, shown as $18.75; $24.75 in all. API Gateway: 30 M x $3.50 per million = $105.00.
* ALB, $21.03: a 732-hour month (30.5 days, the month of the old AWS Simple Monthly Calculator) at
  $0.0225 an hour is $16.47, and 570 GB of processed bytes (19,000 bytes a request, 1 GB an hour
  per LCU) is 570 LCU-hours at $0.008, $4.56: $21.03 exactly. Processed bytes are the largest LCU
  dimension there (0.78 LCU against 0.46 for 11.4 new connections a second). A 730-hour month
  needs 575.6 GB instead; no whole number of LCUs gives $21.03 with either month.
* EC2, $67.94: 2 x t2.medium x $0.0464 x 732 h is $67.9296, which rounds to $67.93; the talk's
  $67.94 is each instance's month rounded *up* to the cent (2 x $33.97), as a bill's line items are.
  ``Prices.ec2_round_up_each`` turns that on for the 2019 table only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import NamedTuple

MILLION = 1_000_000
GB_MB = 1024  # Lambda's GB-seconds count memory in units of 1024 MB
FULL_VCPU_MB = 1769  # "at 1,769 MB, a function has the equivalent of one vCPU" (Lambda docs)


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Source:
    """Where a price was read, and when."""

    what: str
    url: str
    as_of: str  # ISO date the figure was read or announced


@dataclass(frozen=True)
class FreeTier:
    """What a month costs nothing, per service (0 where there is none)."""

    lambda_requests: int = 0
    lambda_gb_s: float = 0.0
    apigw_requests: int = 0  # REST (and HTTP, for the current table) calls a month
    apigw_months: int | None = None  # None: always free; 12: the first 12 months of an account
    note: str = ""


@dataclass(frozen=True)
class Prices:
    """One region's prices at one date, in US dollars."""

    name: str
    region: str
    as_of: str
    lambda_request: float  # per request
    lambda_gb_s: Mapping[str, float]  # per GB-second, by architecture ("x86_64", "arm64")
    lambda_rounding_ms: int  # billed duration is rounded up to a multiple of this
    lambda_init_billed: bool  # INIT phase counted in the billed duration (on-demand, ZIP, managed runtime)
    apigw: Mapping[str, tuple[tuple[float, float], ...]]  # kind -> ((requests up to, $ per million), ...)
    alb_hour: float  # per load balancer hour
    alb_lcu_hour: float  # per LCU-hour
    ec2_hour: Mapping[str, float]  # on-demand Linux, per instance hour
    dynamodb_stream_read: float  # per GetRecords read request (free when a Lambda trigger reads, see CURRENT)
    sns_publish: float  # per publish (64 KB chunk); deliveries to Lambda are free
    month_hours: float  # hours in the month the table's monthly figures assume
    free_tier: FreeTier = FreeTier()
    ec2_round_up_each: bool = False  # round each instance's month up to the cent (the talk's EC2 figure)
    sources: tuple[Source, ...] = field(default=())


#: LCU dimensions of an Application Load Balancer: one LCU buys this much per hour, and an hour is
#: billed for the largest of the four. Processed bytes: 1 GB an hour for EC2 instances, containers and
#: IP targets, 0.4 GB an hour for Lambda targets.
LCU = _frozen({
    "new_connections_per_s": 25,
    "active_connections_per_min": 3000,
    "processed_gb_per_h": 1.0,
    "processed_gb_per_h_lambda": 0.4,
    "rule_evaluations_per_s": 1000,  # after 10 free rules a request
})

INF = math.inf

TALK_2019 = Prices(
    name="talk (2019)",
    region="us-east-1",
    as_of="2019-10",  # the talk (7th Athens Gophers Meetup) cites a source of 26 Sep 2019
    lambda_request=0.0000002,
    lambda_gb_s=_frozen({"x86_64": 0.00001667}),
    lambda_rounding_ms=100,
    lambda_init_billed=False,
    apigw=_frozen({"rest": ((333 * MILLION, 3.50), (1000 * MILLION, 2.80), (20_000 * MILLION, 2.38), (INF, 1.51))}),
    alb_hour=0.0225,
    alb_lcu_hour=0.008,
    ec2_hour=_frozen({"t2.medium": 0.0464}),
    dynamodb_stream_read=0.000000226,  # the talk's figure (slide 133); us-east-1 listed $0.02 per 100,000
    sns_publish=0.50 / MILLION,
    month_hours=732,
    free_tier=FreeTier(lambda_requests=MILLION, lambda_gb_s=400_000, apigw_requests=MILLION, apigw_months=12,
                       note="slide 137: Lambda 1 M executions a month (always), API Gateway 1 M calls a month "
                            "(12 months), SNS 1 M publishes and 100 K HTTP(S) deliveries, DynamoDB 25 GB, "
                            "25 RCU, 25 WCU (always), S3 5 GB, 20 K GET, 5 K PUT (12 months)"),
    ec2_round_up_each=True,
    sources=(
        Source("Lambda $0.0000002 a request, $0.00001667 per GB-s, 100 ms rounding", "talk slides 123-125", "2019"),
        Source("the monthly comparison, free tier, DynamoDB stream read $0.000000226 (us-east-1 listed $0.0000002; "
               "the talk's may be a European region's)", "talk slides 133-137", "2019"),
        Source("Lambda pricing (archived)", "https://web.archive.org/web/2019/https://aws.amazon.com/lambda/pricing/", "2019"),
        Source("API Gateway REST $3.50 per million (first 333 M)", "https://aws.amazon.com/api-gateway/pricing/", "2019"),
        Source("ALB $0.0225 an hour, $0.008 per LCU-hour", "https://aws.amazon.com/elasticloadbalancing/pricing/", "2019"),
        Source("EC2 t2.medium $0.0464 an hour", "https://aws.amazon.com/ec2/pricing/on-demand/", "2019"),
    ),
)

CURRENT = Prices(
    name="current",
    region="us-east-1",
    as_of="2026-11-26",
    lambda_request=0.20 / MILLION,
    lambda_gb_s=_frozen({"x86_64": 0.0000166667, "arm64": 0.0000133334}),  # first 6 billion GB-s a month
    lambda_rounding_ms=1,  # since December 2020
    lambda_init_billed=True,  # since 1 August 2025
    apigw=_frozen({
        "rest": ((333 * MILLION, 3.50), (1000 * MILLION, 2.80), (20_000 * MILLION, 2.38), (INF, 1.51)),
        "http": ((300 * MILLION, 1.00), (INF, 0.90)),
    }),
    alb_hour=0.0225,
    alb_lcu_hour=0.008,
    ec2_hour=_frozen({"t2.medium": 0.0464, "t3.medium": 0.0416, "t4g.medium": 0.0336}),
    dynamodb_stream_read=0.02 / 100_000,  # but reads made by a Lambda trigger are not charged
    sns_publish=0.50 / MILLION,
    month_hours=730,  # 8,760 hours a year / 12, as the AWS Pricing Calculator counts
    free_tier=FreeTier(lambda_requests=MILLION, lambda_gb_s=400_000, apigw_requests=MILLION, apigw_months=12,
                       note="Lambda 1 M requests and 400,000 GB-s a month, always; API Gateway 1 M REST + 1 M HTTP "
                            "calls a month for 12 months, but accounts opened since 15 July 2025 get the Free plan "
                            "(up to $200 of credits for 6 months) instead of 12-month offers; DynamoDB 25 GB and "
                            "SNS 1 M publishes stay always free"),
    sources=(
        Source("Lambda $0.20 per million, x86 $0.0000166667 / arm64 $0.0000133334 per GB-s, 1 M + 400,000 GB-s free",
               "https://aws.amazon.com/lambda/pricing/", "2026-11-26"),
        Source("1 ms billing granularity", "https://aws.amazon.com/about-aws/whats-new/2020/12/aws-lambda-changes-duration-billing-granularity-from-100ms-to-1ms/", "2020-12-01"),
        Source("INIT phase billed for ZIP + managed runtimes", "https://aws.amazon.com/blogs/compute/aws-lambda-standardizes-billing-for-init-phase/", "2025-08-01"),
        Source("API Gateway REST $3.50, HTTP $1.00 per million", "https://aws.amazon.com/api-gateway/pricing/", "2026-11-26"),
        Source("ALB $0.0225 an hour, $0.008 per LCU-hour, LCU dimensions", "https://aws.amazon.com/elasticloadbalancing/pricing/", "2026-11-26"),
        Source("EC2 on-demand Linux t2/t3/t4g.medium", "https://aws.amazon.com/ec2/pricing/on-demand/", "2026-11-26"),
        Source("DynamoDB Streams $0.02 per 100,000 read request units", "https://aws.amazon.com/dynamodb/pricing/on-demand/", "2026-11-26"),
        Source("DynamoDB Streams reads by Lambda triggers are free",
               "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CostOptimization_StreamsUsage.html",
               "2026-11-26"),
        Source("SNS $0.50 per million publishes, Lambda deliveries free", "https://aws.amazon.com/sns/pricing/", "2026-11-26"),
        Source("Free Tier changes for new accounts", "https://aws.amazon.com/free/", "2025-07-15"),
    ),
)


# ----------------------------------------------------------------------------------- rounding

def cents(amount: float) -> float:
    """``amount`` rounded to the cent, halves up (not float's round-half-even)."""
    return float(Decimal(repr(float(amount))).quantize(Decimal("0.01"), ROUND_HALF_UP))


def cents_up(amount: float) -> float:
    """``amount`` rounded up to the cent (float noise below a millionth of a cent ignored)."""
    return float(Decimal(repr(round(float(amount), 8))).quantize(Decimal("0.01"), ROUND_CEILING))


def billed_ms(duration_ms: float, rounding_ms: int) -> int:
    """Billed duration: rounded up to a multiple of ``rounding_ms`` (100 until Dec 2020, 1 since)."""
    return max(1, math.ceil(round(duration_ms, 6) / rounding_ms)) * rounding_ms


# ----------------------------------------------------------------------------------- Lambda

class LambdaCost(NamedTuple):
    requests: float  # request charge
    compute: float  # GB-second charge
    gb_s: float  # GB-seconds billed

    @property
    def total(self) -> float:
        return self.requests + self.compute


def lambda_cost(requests: float, duration_ms: float, memory_mb: float, prices: Prices = CURRENT,
                arch: str = "x86_64", rounding_ms: int | None = None, init_ms: float = 0.0,
                init_share: float = 0.0, free_tier: bool = False) -> LambdaCost:
    """Lambda's charge for ``requests`` invocations of ``duration_ms`` each at ``memory_mb``.

    ``init_share`` of the invocations are cold starts whose ``init_ms`` is billed too when the table
    says INIT is billed (since 1 Aug 2025; the billed duration is then rounded up as one span).
    ``free_tier`` subtracts the monthly free requests and GB-seconds.
    """
    rounding = prices.lambda_rounding_ms if rounding_ms is None else rounding_ms
    warm = billed_ms(duration_ms, rounding)
    cold = billed_ms(duration_ms + (init_ms if prices.lambda_init_billed else 0.0), rounding)
    billed_total_ms = requests * ((1 - init_share) * warm + init_share * cold)
    gb_s = billed_total_ms / 1000 * memory_mb / GB_MB
    paid_requests, paid_gb_s = requests, gb_s
    if free_tier:
        paid_requests = max(0.0, requests - prices.free_tier.lambda_requests)
        paid_gb_s = max(0.0, gb_s - prices.free_tier.lambda_gb_s)
    return LambdaCost(paid_requests * prices.lambda_request, paid_gb_s * prices.lambda_gb_s[arch], gb_s)


def invocation_cost(duration_ms: float, memory_mb: float, prices: Prices = CURRENT, arch: str = "x86_64",
                    rounding_ms: int | None = None, with_request: bool = True) -> float:
    """One invocation's charge (what power tuning compares); without the request charge if asked."""
    cost = lambda_cost(1, duration_ms, memory_mb, prices, arch, rounding_ms)
    return cost.total if with_request else cost.compute


# ----------------------------------------------------------------------------------- API Gateway, ALB, EC2

def apigw_cost(requests: float, prices: Prices = CURRENT, kind: str = "rest", free_tier: bool = False) -> float:
    """API Gateway's charge for ``requests`` calls of a ``kind`` ("rest" or "http") API, tier by tier."""
    if free_tier:
        requests = max(0.0, requests - prices.free_tier.apigw_requests)
    cost, below = 0.0, 0.0
    for up_to, per_million in prices.apigw[kind]:
        in_tier = max(0.0, min(requests, up_to) - below)
        cost += in_tier / MILLION * per_million
        below = up_to
    return cost


def alb_lcus(new_connections_per_s: float = 0.0, active_connections_per_min: float = 0.0,
             processed_gb_per_h: float = 0.0, rule_evaluations_per_s: float = 0.0,
             lambda_targets: bool = False) -> float:
    """LCUs an ALB is billed for in an hour: the largest of its four dimensions."""
    per_gb = LCU["processed_gb_per_h_lambda"] if lambda_targets else LCU["processed_gb_per_h"]
    return max(new_connections_per_s / LCU["new_connections_per_s"],
               active_connections_per_min / LCU["active_connections_per_min"],
               processed_gb_per_h / per_gb,
               rule_evaluations_per_s / LCU["rule_evaluations_per_s"])


def alb_lcus_for(requests: float, hours: float, bytes_per_request: float = 19_000, connection_s: float = 0.2,
                 rules: int = 1, lambda_targets: bool = False) -> float:
    """LCUs for ``requests`` spread evenly over ``hours``: one connection a request (no keep-alive)."""
    per_s = requests / (hours * 3600)
    return alb_lcus(new_connections_per_s=per_s,
                    active_connections_per_min=per_s * connection_s * 60,
                    processed_gb_per_h=requests * bytes_per_request / 1e9 / hours,
                    rule_evaluations_per_s=per_s * max(0, rules - 10),
                    lambda_targets=lambda_targets)


def alb_cost(hours: float, lcus: float, prices: Prices = CURRENT, load_balancers: int = 1) -> float:
    """An ALB's charge: its hours plus ``lcus`` LCUs in each of them."""
    return load_balancers * hours * (prices.alb_hour + lcus * prices.alb_lcu_hour)


def ec2_cost(instances: int, hours: float, prices: Prices = CURRENT, instance_type: str = "t2.medium") -> float:
    """On-demand EC2: ``instances`` running ``hours`` each (each month rounded up to the cent if the table says so)."""
    each = hours * prices.ec2_hour[instance_type]
    return instances * (cents_up(each) if prices.ec2_round_up_each else each)


# ----------------------------------------------------------------------------------- the comparison

class Row(NamedTuple):
    solution: str
    front: float  # the part that receives the request (API Gateway or ALB), to the cent
    back: float  # the part that runs the code (Lambda or EC2), to the cent

    @property
    def total(self) -> float:
        return cents(self.front + self.back)


def compare(requests: float = 30 * MILLION, duration_ms: float = 200, memory_mb: float = 192,
            prices: Prices = TALK_2019, arch: str = "x86_64", instances: int = 2, instance_type: str = "t2.medium",
            api: str = "rest", bytes_per_request: float = 19_000, lambda_targets: bool = False,
            init_ms: float = 0.0, init_share: float = 0.0, free_tier: bool = False,
            hours: float | None = None) -> list[Row]:
    """The talk's monthly comparison: API GW + Lambda, ALB + Lambda, ALB + EC2 (each part to the cent).

    ``lambda_targets`` counts processed bytes at 0.4 GB an LCU for the ALB in front of Lambda, as AWS
    does today; the talk priced both ALBs alike.
    """
    hours = prices.month_hours if hours is None else hours
    fn = lambda_cost(requests, duration_ms, memory_mb, prices, arch, init_ms=init_ms, init_share=init_share,
                     free_tier=free_tier).total
    alb_for_ec2 = alb_cost(hours, alb_lcus_for(requests, hours, bytes_per_request), prices)
    alb_for_fn = alb_cost(hours, alb_lcus_for(requests, hours, bytes_per_request, lambda_targets=lambda_targets), prices)
    return [
        Row(f"API GW ({api}) + Lambda", cents(apigw_cost(requests, prices, api, free_tier)), cents(fn)),
        Row("ALB + Lambda", cents(alb_for_fn), cents(fn)),
        Row(f"ALB + EC2 ({instances} x {instance_type})", cents(alb_for_ec2),
            cents(ec2_cost(instances, hours, prices, instance_type))),
    ]


def table(rows: list[Row]) -> str:
    """The comparison as aligned text, as on slide 134."""
    lines = [f"{'solution':32} {'monthly cost ($)':>26}"]
    lines += [f"{r.solution:32} {r.front:>9.2f} + {r.back:>6.2f} = {r.total:>7.2f}" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- break-even, power tuning

def break_even(cost_a: Callable[[float], float], cost_b: Callable[[float], float],
               low: float, high: float, tolerance: float = 1.0) -> float | None:
    """Requests a month where two monthly-cost curves cross (bisection), or None if they don't in [low, high]."""
    diff = lambda n: cost_a(n) - cost_b(n)  # noqa: E731
    if diff(low) == 0:
        return low
    if diff(low) * diff(high) > 0:
        return None
    while high - low > tolerance:
        mid = (low + high) / 2
        if diff(low) * diff(mid) <= 0:
            high = mid
        else:
            low = mid
    return (low + high) / 2


def cpu_share(memory_mb: float) -> float:
    """Lambda's CPU allowance as a share of one vCPU: proportional to memory, one vCPU at 1,769 MB."""
    return memory_mb / FULL_VCPU_MB


def modelled_duration_ms(measured_ms: float, cpu_ms: float, memory_mb: float) -> float:
    """A MODEL of the duration at ``memory_mb``, from one measured with a whole vCPU.

    The CPU-bound part (``cpu_ms`` of ``measured_ms``) stretches by 1/cpu_share below 1,769 MB and
    does not shrink above it (single-threaded code uses one vCPU however many it is given); the rest
    (waiting on S3 and DynamoDB) is taken as unchanged.
    """
    cpu_ms = min(cpu_ms, measured_ms)
    return (measured_ms - cpu_ms) + cpu_ms * max(1.0, 1 / cpu_share(memory_mb))


def power_tuning_choice(results: list[tuple[float, float, float]], strategy: str = "cost",
                        balanced_weight: float = 0.5) -> tuple[float, float, float]:
    """The (memory, duration, cost) aws-lambda-power-tuning's analyzer would pick from ``results``.

    "cost": cheapest (fastest on ties); "speed": fastest (cheapest on ties); "balanced": smallest
    ``w * cost / max cost + (1 - w) * duration / max duration``, w = ``balanced_weight`` (0.5 by default).
    """
    if strategy == "cost":
        return min(results, key=lambda r: (r[2], r[1]))
    if strategy == "speed":
        return min(results, key=lambda r: (r[1], r[2]))
    if strategy == "balanced":
        w = min(max(balanced_weight, 0.0), 1.0)
        max_cost, max_duration = max(r[2] for r in results), max(r[1] for r in results)
        return min(results, key=lambda r: w * r[2] / max_cost + (1 - w) * r[1] / max_duration)
    raise ValueError(f"unknown strategy {strategy!r}: cost, speed or balanced")
