"""The cohort simulator: longitudinal patients of one area with a known true world, in memory and fast.

Generative story (per area file ``simulation`` block, seed ``s``; every patient i)::

    truth            = draw_truth(area, s)                               # see planner.simulate.truth
    age_i ~ N(mean, sd) clipped; female_i ~ Bernoulli(female_share); index date ~ U(2014-01-01, +5 y)
    quantity q (bmi, egfr, ...): base ~ N(mean + age_slope (age - 60), sd), drifts per_year, clipped
    comorbidity k ~ Bernoulli(prevalence), onset before index or (incident_share) during follow-up
    untreated level correlates with quantities/age (untreated_slopes); comorbidities with quantities
        (prevalence_below, e.g. CKD more likely when eGFR < 60)
    genotype panel ~ Bernoulli(tested_share), dated; alleles ~ population frequencies (Hardy-Weinberg);
        biology uses every patient's true phenotype, the record only shows tested ones
    drug allergy ~ Bernoulli(drug_allergy_share): one formulary drug (clinicians never prescribe it)
    untreated level u_i(t) = N(untreated_mean, untreated_sd) + drift_i t    (model scale; drift_i ~ N)
    prevalent users (prevalent_share): a first-line drug started 1-24 months before the first visit
    visits every U(visit_interval_days); drop-out per year; follow-up U(followup_years)
    at each visit:
        outcome measured unless missed (missed_lab): y = u_i(t) + E_i + N(0, noise_sd), rounded, clipped
        other quantities measured with their own probability, with noise
        stops for intolerance (stop_probability per drug)
        if y is above the patient's target: act with p = act_probability (1 - exp(-gap / act_gap)):
            uptitrate | add a class | switch a class (action_weights; choice log-weights with feature terms,
            combination limits, exclusions by eGFR, allergies) -> a new regimen, dated this day
        if y is below target by act_gap: step down with deescalate_probability
    a new drug or dose may cause an early adverse stop 10-55 days later (base + PGx stop_probability):
        a change before any follow-up is possible (the "overlapping-change" drop of the episode rules)
    E_i (the regimen's true effect) is fixed when the regimen starts, from the true features at that day.
    failed courses (areas listed in rules/areas/simulation/retrial.yaml): an early adverse stop marks the drug
        not tolerated (a re-trial is stopped early again with restop_same_drug); a course of adequate_days
        whose noise-free level fell by less than fall_below marks it without response (a re-trial of it or
        a class-mate keeps that factor of its effect); the truth reads both from ``true_retrial:<drug>``

Decisions frame (``SimCohort.decisions``), one row per change of the area regimen (every candidate t0):

======================  ===========================================================================
column                  meaning
======================  ===========================================================================
patient_id              the Patient.id written to FHIR
decision                0-based number of the change within the patient
t0                      date of the change (datetime64[ns]; a day)
day                     days since the patient's first visit (negative: prevalent start)
reason                  prevalent | start | uptitrate | add | switch | deescalate | stop-adverse | stop
regimen_before          :class:`~planner.record.Regimen` active the day before t0 (object column)
regimen                 :class:`~planner.record.Regimen` active from t0 (object column)
regimen_before_key      ``Regimen.key()`` strings of the two (e.g. ``metformin@1000+sitagliptin@100``)
regimen_key
baseline, baseline_date latest outcome in [t0-180 d, t0] (NaN/NaT when none), outcome units
followup, followup_date closest to t0+180 d in [t0+60 d, t0+365 d] and on or before the next change
episode                 True when both exist (the episode rules keep it)
drop_reason             None | no-baseline | overlapping-change | no-follow-up (first failing rule)
next_t0                 date of the next change (NaT if none)
target                  the patient's target at t0 (area target rules)
<feature>               each area feature as the record shows it at t0 (NaN when not measured in its
                        lookback; pgx features: CPIC phenotype or "not-tested"); equal to what
                        planner.features.features_at gives on the ingested record
cur_<class>, cur_n_drugs  the current regimen (regimen_before): dose / reference dose per class, count
true_<feature>          the noise-free value the truth uses (true_baseline: expected outcome at t0 under
                        regimen_before; true_<pgx>: the true phenotype, tested or not)
latent_untreated        expected outcome at t0+followup_days with no drug (outcome units)
true_retrial:<drug>     factor on that drug's effect from the failed courses so far (areas with a re-trial entry)
true_expected           TRUE expected follow-up outcome under ``regimen`` (outcome units)
true_expected_before    the same under ``regimen_before`` (continuing unchanged)
======================  ===========================================================================

Evaluate any regimen: ``planner.simulate.expected_outcome(area, cohort.decisions, regimens,
truth_params=cohort.truth)`` (or ``cohort.expected_outcome(regimens)``).
"""

from __future__ import annotations

from ..areas import Area, load_area
from ..errors import ConfigError
from .engine import SimRun
from .frames import build_outputs
from .result import SimCohort

__all__ = ["SimCohort", "simulate_cohort"]


def simulate_cohort(area: "Area | str", n: int, *, seed: int) -> SimCohort:
    """Simulate ``n`` patients of ``area`` (an :class:`Area` or its id) with the true world of ``seed``.

    Deterministic: the same area file, ``n`` and ``seed`` give identical frames. The true world
    (:class:`TruthParams`) depends on the area and seed only, not on ``n``.
    """
    if isinstance(area, str):
        area = load_area(area)
    if int(n) < 1:
        raise ConfigError("cohort size must be positive", field="n", value=n, expected="an integer >= 1")
    run = SimRun(area, int(n), int(seed))
    return build_outputs(run, run.run())
