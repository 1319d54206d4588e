"""The pricing module: the talk's figures to the cent, billing granularity, arm64, free tier, INIT billing."""

import pytest

from workshop import pricing
from workshop.pricing import CURRENT, TALK_2019


def test_the_talks_lambda_bill_is_6_plus_18_75():  # slide 125
    cost = pricing.lambda_cost(30_000_000, 200, 192, TALK_2019)
    assert pricing.cents(cost.requests) == 6.00
    assert pricing.cents(cost.compute) == 18.75
    assert pricing.cents(cost.total) == 24.75


def test_the_talks_monthly_comparison_to_the_cent():  # slides 134-136
    rows = pricing.compare(30_000_000, 200, 192, TALK_2019)
    assert [(r.front, r.back, r.total) for r in rows] == [
        (105.00, 24.75, 129.75),
        (21.03, 24.75, 45.78),
        (21.03, 67.94, 88.97),
    ]


def test_the_talks_alb_is_732_hours_plus_570_lcu_hours():
    lcus = pricing.alb_lcus_for(30_000_000, 732, bytes_per_request=19_000)
    assert lcus * 732 == pytest.approx(570)
    assert pricing.cents(pricing.alb_cost(732, lcus, TALK_2019)) == 21.03
    assert pricing.cents(pricing.alb_cost(730, pricing.alb_lcus_for(30_000_000, 730), TALK_2019)) == 20.99


def test_the_talks_ec2_rounds_each_instance_up_to_the_cent():
    assert pricing.ec2_cost(2, 732, TALK_2019) == pytest.approx(67.94)
    assert pricing.cents(pricing.ec2_cost(2, 732, CURRENT)) == 67.93  # without that rounding


def test_the_talks_power_tuning_figures():  # slides 128-129: compute charge, 100 ms rounding
    assert round(pricing.invocation_cost(294, 1344, TALK_2019, with_request=False), 7) == 0.0000066
    assert round(pricing.invocation_cost(307, 1280, TALK_2019, with_request=False), 7) == 0.0000083


def test_100_ms_rounding_vs_1_ms_billing():
    assert pricing.billed_ms(201, 100) == 300
    assert pricing.billed_ms(201, 1) == 201
    assert pricing.billed_ms(200.0001, 1) == 201
    assert pricing.billed_ms(0.2, 1) == 1
    old = pricing.lambda_cost(1_000_000, 101, 1024, CURRENT, rounding_ms=100)
    new = pricing.lambda_cost(1_000_000, 101, 1024, CURRENT)
    assert old.gb_s == 200_000 and new.gb_s == pytest.approx(101_000)


def test_arm64_is_cheaper_than_x86_by_the_price_ratio():
    x86 = pricing.lambda_cost(10_000_000, 120, 512, CURRENT, "x86_64")
    arm = pricing.lambda_cost(10_000_000, 120, 512, CURRENT, "arm64")
    assert arm.requests == x86.requests
    assert arm.compute / x86.compute == pytest.approx(0.0000133334 / 0.0000166667)
    assert arm.compute / x86.compute == pytest.approx(0.8, abs=1e-5)


def test_the_free_tier_is_subtracted_from_requests_and_gb_seconds():
    inside = pricing.lambda_cost(1_000_000, 100, 1024, CURRENT, free_tier=True)  # 100,000 GB-s
    assert inside.total == 0
    over = pricing.lambda_cost(3_000_000, 1000, 256, CURRENT, free_tier=True)  # 750,000 GB-s
    assert over.requests == pytest.approx(2_000_000 * 0.20 / 1_000_000)
    assert over.compute == pytest.approx(350_000 * 0.0000166667)
    assert pricing.apigw_cost(1_000_000, CURRENT, free_tier=True) == 0
    assert pricing.apigw_cost(2_000_000, CURRENT, free_tier=True) == pytest.approx(3.50)


def test_init_is_billed_only_since_august_2025():
    args = dict(requests=1000, duration_ms=50, memory_mb=1024, init_ms=450, init_share=0.1)
    now = pricing.lambda_cost(prices=CURRENT, **args)
    assert now.gb_s == pytest.approx((900 * 50 + 100 * 500) / 1000)
    before = pricing.lambda_cost(prices=TALK_2019, rounding_ms=1, **args)
    assert before.gb_s == pytest.approx(1000 * 50 / 1000)


def test_api_gateway_tiers_and_http_apis():
    assert pricing.apigw_cost(30_000_000, CURRENT, "rest") == pytest.approx(105)
    assert pricing.apigw_cost(30_000_000, CURRENT, "http") == pytest.approx(30)
    assert pricing.apigw_cost(400_000_000, CURRENT, "rest") == pytest.approx(333 * 3.5 + 67 * 2.8)


def test_alb_is_billed_for_its_largest_lcu_dimension():
    assert pricing.alb_lcus(new_connections_per_s=50, processed_gb_per_h=1.0) == 2
    assert pricing.alb_lcus(processed_gb_per_h=1.0, lambda_targets=True) == 2.5
    assert pricing.alb_lcus(rule_evaluations_per_s=3000, active_connections_per_min=3000) == 3


def test_break_even_finds_where_two_lines_cross():
    n = pricing.break_even(lambda n: 5 + n / 1e6, lambda n: 10.0, 0, 1e8)
    assert n == pytest.approx(5e6, abs=1)
    assert pricing.break_even(lambda n: 1.0, lambda n: 2.0, 0, 1e8) is None


def test_power_tuning_model_and_strategies():
    assert pricing.modelled_duration_ms(100, 80, 1769) == pytest.approx(100)
    assert pricing.modelled_duration_ms(100, 80, 10240) == pytest.approx(100)
    assert pricing.modelled_duration_ms(100, 80, 1769 / 4) == pytest.approx(20 + 320)
    results = [(128, 1000.0, 3.0), (512, 300.0, 2.0), (1024, 200.0, 4.0)]
    assert pricing.power_tuning_choice(results, "cost")[0] == 512
    assert pricing.power_tuning_choice(results, "speed")[0] == 1024
    assert pricing.power_tuning_choice(results, "balanced")[0] == 512
    with pytest.raises(ValueError):
        pricing.power_tuning_choice(results, "fastest")


def test_price_tables_are_dated_and_sourced_and_frozen():
    for prices in (TALK_2019, CURRENT):
        assert prices.as_of and prices.sources
        assert all(s.url and s.as_of for s in prices.sources)
        with pytest.raises(Exception):
            prices.lambda_request = 0  # type: ignore[misc]
        with pytest.raises(TypeError):
            prices.lambda_gb_s["x86_64"] = 0  # type: ignore[index]
