from lsssdc import refdata


def test_kommuner_and_lan():
    k = refdata.kommuner()
    assert len(k) == 290 and k["kommun_kod"].str.fullmatch(r"\d{4}").all()
    assert len(refdata.lan()) == 21
    assert set(k["lan_kod"]) == set(refdata.lan()["lan_kod"])


def test_codes_follow_the_year():
    assert "0330" not in refdata.kommun_codes(2002) and "0330" in refdata.kommun_codes(2003)
    assert "1917" in refdata.kommun_codes(2006) and "0331" not in refdata.kommun_codes(2006)
    assert "0331" in refdata.kommun_codes(2007) and "1917" not in refdata.kommun_codes(2007)
    assert len(refdata.kommun_codes(2002)) == 289 and len(refdata.kommun_codes(2024)) == 290


def test_population_adds_up_to_the_national_total():
    assert refdata.befolkning()["folkmangd"].sum() == 10_551_707
    assert len(refdata.kommungrupper()) == 290
