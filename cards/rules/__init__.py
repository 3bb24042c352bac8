"""The rule registry: every rule, its id, the card topic it feeds and its source, in one list.

docs/clinical-rules.md mirrors this table; tests check the two agree.
"""
from __future__ import annotations

from cards.findings import (ABNORMAL_RESULT, COMPRESSION, CRAMP_MANAGEMENT, CYCLOBENZAPRINE, DATA_GAP, DIFFERENTIAL,
                            HEALTH_ANXIETY, MEDICATION_REVIEW, NEUROLOGY_REFERRAL, QUININE, REASSURANCE,
                            TREATMENT_OPTIONS, WORKUP_INCOMPLETE, Finding)
from cards.knowledge_base import Knowledge
from cards.rules import advice, data_quality, labs, medicines, red_flags, workup
from cards.rules.base import Rule
from cards.view import PatientView

RULES: tuple[Rule, ...] = (
    # Red flags -> neurology referral (any trigger, except RF8 which needs an index symptom).
    Rule("RF1", NEUROLOGY_REFERRAL, "S4 What questions should I ask? (any weakness: referral appropriate); S4 fasciculation row; "
         "E13 NICE NG42 (weakness with twitching: consider MND)",
         red_flags.weakness, needs_index_symptom=False),
    Rule("RF2", NEUROLOGY_REFERRAL, "S4 What treatment should I do? fasciculation row (wasting/weakness); E13 NICE NG42",
         red_flags.wasting, needs_index_symptom=False),
    Rule("RF3", NEUROLOGY_REFERRAL, "S4 fasciculation row (very florid or widespread); E13 NICE NG42",
         red_flags.florid_fasciculation, needs_index_symptom=False),
    Rule("RF4", NEUROLOGY_REFERRAL, "S4 fasciculation row (with severe cramp); S4 cramps row (profound/debilitating); E13",
         red_flags.severe_cramp, needs_index_symptom=False),
    Rule("RF5", NEUROLOGY_REFERRAL, "E13 NICE NG42 (bulbar or respiratory features: refer without delay)",
         red_flags.bulbar_or_respiratory, needs_index_symptom=False),
    Rule("RF6", NEUROLOGY_REFERRAL, "S4 Common causes (myotonia suggests neuromuscular disease)",
         red_flags.myotonia, needs_index_symptom=False),
    Rule("RF7", NEUROLOGY_REFERRAL, "S4 myokymia row (any other neurological symptom); E21 (brainstem cause)",
         red_flags.myokymia_with_other_symptoms, needs_index_symptom=False),
    Rule("RF8", NEUROLOGY_REFERRAL, "E11 EFNS hyperCKemia guideline (CK at least 3x ULN); E12", red_flags.ck_red_flag),
    Rule("RF9", NEUROLOGY_REFERRAL, "E13 NICE NG42 (suspected MND: refer without delay); S0 Long-Term Follow-Up "
         "(known MND: specialist already involved)", red_flags.known_motor_neuron_disease, needs_index_symptom=False),
    # Work-up completeness.
    Rule("W1", WORKUP_INCOMPLETE, "S4 What tests should I do in primary care?; S0 Screen for Secondary Causes; E3; E9",
         workup.required_tests),
    Rule("W2", WORKUP_INCOMPLETE, "E9 NICE CKS leg cramps; E3 (magnesium when on a diuretic)",
         workup.magnesium_on_diuretic),
    # Abnormal results: every work-up result outside its range (labs.yaml out_of_range).
    Rule("L1", ABNORMAL_RESULT, "S0 Screen for Secondary Causes (electrolytes); S4 Common causes; E3; E9; E15", labs.potassium),
    Rule("L2", ABNORMAL_RESULT, "S0 Screen for Secondary Causes (electrolytes); E3; E9; E15", labs.magnesium),
    Rule("L3", ABNORMAL_RESULT, "S0 Screen for Secondary Causes (metabolic disorders); S4 Common causes; E3; E9; E15",
         labs.calcium),
    Rule("L4", ABNORMAL_RESULT, "S0 Screen for Secondary Causes (electrolytes); S4 Common causes (dehydration); E3; E9",
         labs.sodium),
    Rule("L5", ABNORMAL_RESULT, "S0 Screen for Secondary Causes (hyperthyroidism); E3; E9, E15 (hypothyroidism); E2",
         labs.thyroid),
    Rule("L6", ABNORMAL_RESULT, "E11 EFNS (CK above 1.5x ULN); E12; S4 What tests (trivial rises rarely relevant)",
         labs.ck),
    Rule("L7", ABNORMAL_RESULT, "S4 Common causes (metabolic disorders may also cause cramp); E3; E9; E15 (kidney failure)",
         labs.renal_function),
    # Data that could not be seen.
    Rule("DQ1", DATA_GAP, "DQ data-quality policy (unknown is never normal; docs/clinical-rules.md)",
         data_quality.data_gaps, needs_index_symptom=False),
    # Medicines.
    Rule("M1", MEDICATION_REVIEW, "S4 What questions should I ask? (diuretics); E10", medicines.diuretics),
    Rule("M2", MEDICATION_REVIEW, "S4 What questions should I ask? (methylphenidate); E15", medicines.stimulants),
    Rule("M3", MEDICATION_REVIEW, "S0 Screen for Secondary Causes (corticosteroids); E5", medicines.corticosteroids),
    Rule("M4", MEDICATION_REVIEW, "E9 NICE CKS (salbutamol); E10 (long-acting beta-2 agonists)",
         medicines.beta2_agonists),
    Rule("M5", MEDICATION_REVIEW, "E14 pyridostigmine SmPC; E15 (donepezil)", medicines.cholinesterase_inhibitors),
    Rule("Q1", QUININE, "E7 FDA 2010; E6 AAN 2010; E8 MHRA 2014/2017; E9", medicines.quinine),
    Rule("C1", CYCLOBENZAPRINE, "S0 Muscle Relaxants: Limited Role", medicines.cyclobenzaprine),
    # Advice.
    Rule("R1", REASSURANCE, "S0 Reassurance and Observation; S0 Clinical Monitoring; S4 Common causes; E1; E4",
         advice.reassurance),
    Rule("T1", TREATMENT_OPTIONS, "S0 Pharmacologic Treatment Options; E2", advice.treatment_options),
    Rule("CR1", CRAMP_MANAGEMENT, "S4 What treatment should I do? cramps row; E6; E18; E9", advice.cramp_management),
    Rule("CR2", CRAMP_MANAGEMENT, "S4 Common causes (cramps worsened by pregnancy); E16", advice.cramp_in_pregnancy),
    Rule("CP1", COMPRESSION, "S0 Compression Therapy Consideration", advice.compression),
    Rule("HA1", HEALTH_ANXIETY, "S4 What questions should I ask? (health anxiety); E4; E17", advice.health_anxiety),
    Rule("D1", DIFFERENTIAL, "S4 Common causes; S4 What treatment should I do?", advice.differentials,
         needs_index_symptom=False),
)


def run_rules(view: PatientView, knowledge: Knowledge, rules: tuple[Rule, ...] = RULES) -> list[Finding]:
    """All findings for the view; nothing at all without an index symptom or a differential."""
    if not view.has_trigger:
        return []
    index = view.has_index_symptom
    return [finding for rule in rules if index or not rule.needs_index_symptom for finding in rule.run(view, knowledge)]
