from lsssdc.register import rules, synth


def test_small_synthetic_register_is_clean_and_injections_are_exact():
    clean = synth.synthesise(years=range(2019, 2023), persons=2000, seed=5)
    assert rules.validate(clean.register, clean.deaths).errors == 0
    inj = synth.synthesise(years=range(2019, 2023), persons=2000, seed=5, inject={"R01": 2, "R09": 4})
    rep = rules.validate(inj.register, inj.deaths)
    assert rep.count("R01", "error") == 2 and rep.count("R09", "error") == 4
    assert rep.errors == 6
