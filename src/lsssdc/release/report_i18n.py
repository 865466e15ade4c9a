"""The reports' words in Swedish and English, and numbers written as each language writes them.

Swedish register terms follow docs/DOMAIN (personkrets, insats, kommun, län); the disclosure
terms are those of Swedish statistical practice (röjanderisk, undertryckning, kvasiidentifierare,
angripare). A check's English reason is the gate's own sentence from ``report.json``; its
Swedish reason is written here from the check's figure and threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SV, EN = "sv", "en"
LANGS = (SV, EN)
NBSP = "\u00a0"

TEXT: dict[str, tuple[str, str]] = {
    # page
    "language": ("Svenska", "English"),
    "switch": ("Språk", "Language"),
    "title": ("Granskningsrapport: beställning {order}", "Reviewer report: order {order}"),
    "intro": (
        "Framställd av lsssdc {version} från underlagen nedan. Varje siffra här finns också i "
        "report.json; sidan återger samma uppgifter och räknar inget själv.",
        "Prepared by lsssdc {version} from the inputs listed below. Every figure here is also in "
        "report.json; this page renders the same facts and computes nothing of its own.",
    ),
    "contents": ("Innehåll", "Contents"),
    # verdict
    "verdict_releasable": (
        "Beslut: kan lämnas ut – får godkännas av en granskare",
        "Verdict: releasable — may be approved by a reviewer",
    ),
    "verdict_refused": (
        "Beslut: avslås – kandidaten kan inte lämnas ut",
        "Verdict: refused — this candidate cannot be released",
    ),
    "verdict_meets": ("Kandidaten uppfyller sin policy.", "The candidate meets its policy."),
    "verdict_fails": (
        "Kandidaten uppfyller inte sin policy och avslås.",
        "The candidate does not meet its policy and is refused.",
    ),
    "checks": ("Grindens kontroller", "The gate's checks"),
    "check": ("Kontroll", "Check"),
    "result": ("Resultat", "Result"),
    "figure": ("Värde", "Figure"),
    "threshold": ("Gräns", "Threshold"),
    "reason": ("Motivering", "Reason"),
    "passed": ("uppfylld", "passed"),
    "failed": ("EJ UPPFYLLD", "FAILED"),
    "checks_explain": (
        "Grinden säger ja bara när det finns kontroller och varje kontroll är uppfylld; värdet är "
        "uppmätt på de behandlade raderna, gränsen kommer från policyn.",
        "The gate says yes only when there are checks and every one holds; the figure is measured "
        "on the treated rows, the threshold comes from the policy.",
    ),
    "no_checks": ("Inget kontrollerades.", "Nothing was checked."),
    # check titles
    "check_roles": ("Variablernas roller", "Roles of the variables"),
    "check_k": ("k-anonymitet för personer", "k-anonymity of persons"),
    "check_l": ("l-diversitet", "l-diversity"),
    "check_suppression": ("Andel behandlade rader", "Share of rows treated"),
    "check_membership": ("Medlemskap i leveransen", "Membership of the delivery"),
    "check_identifiers": ("Direkta identifierare", "Direct identifiers"),
    "check_table_audit": ("Angriparens granskning av tabellerna", "The attacker's audit of the tables"),
    "check_published_tables": ("Tabeller utlämnade för samma år", "Tables delivered for the same years"),
    "why_published_tables": (
        "Tabellerna som lämnats ut för samma år förblir skyddade med detta uttag ({figure} celler "
        "till kan räknas ur uttaget).",
        "",
    ),
    "check_disclosure": ("Röjandekontroll", "Disclosure control"),
    "check_input": ("Underlag", "Input"),
    # Swedish reasons (the English ones are the gate's own sentences)
    "why_roles_ok": ("Varje utlämnad variabel har en roll i policyn.", ""),
    "why_roles_fail": (
        "Ingen roll i policyn (kvasiidentifierare, känslig eller säker med motivering) för: {variables}.",
        "",
    ),
    "why_k": (
        "Den minsta gruppen personer med samma utlämnade rader över alla år har {figure} personer; "
        "policyn kräver {threshold}.",
        "",
    ),
    "why_suppression": (
        "{figure} av raderna har ett undertryckt värde eller är undantagna; policyn tillåter {threshold}.",
        "",
    ),
    "why_l": ("l-diversiteten är {figure}; policyn kräver {threshold}.", ""),
    "why_membership": (
        "Leveransen omfattar högst {figure} av en befolkningsgrupp; policyn tillåter {threshold}.",
        "",
    ),
    "why_membership_none": (
        "Policyn begränsar hur stor andel av en befolkningsgrupp en leverans får omfatta ({threshold}), "
        "men ingen befolkningstabell angavs (prepare --population FIL).",
        "",
    ),
    "why_identifiers_ok": ("Direkta identifierare är borttagna.", ""),
    "why_identifiers_tables": ("Tabellerna innehåller endast antal.", ""),
    "why_identifiers_fail": ("En direkt identifierare finns kvar i data: {variables}.", ""),
    "why_table_audit_ok": (
        "Angriparens linjärprogram visar att varje dold cell har ett tillräckligt brett intervall.",
        "",
    ),
    "why_table_audit_fail": ("Angriparen kan snäva in {figure} dolda celler för mycket.", ""),
    "why_other": ("Beställningen kunde inte behandlas. Meddelandet på engelska:", ""),
    # intruder
    "intruder": ("Vad angriparen antas veta", "What the intruder is assumed to know"),
    "intruder_knows": (
        "De sanna värdena för {variables}, för ett, flera eller alla av personens år.",
        "The true values of {variables} in any or all of the person's years, not only in one.",
    ),
    "intruder_years": (
        "Vilka år personen hade insatser, det vill säga vilka år personen finns i registret.",
        "The years in which the person had services, that is, which years they are in the register.",
    ),
    "intruder_death": ("Dödsåret.", "The year of death."),
    "intruder_rules": (
        "Registrets regler, som gör att en utlämnad insats säger något om en kvasiidentifierare:",
        "The register's rules, by which a released insats says something about a quasi-identifier:",
    ),
    "intruder_no_rules": (
        "Registrets regler (inga gäller de utlämnade variablerna).",
        "The register's rules (none apply to the delivered variables).",
    ),
    "intruder_blank": (
        "Ett undertryckt värde fyller angriparen i från personens andra rader.",
        "A blank is refilled from the person's other rows.",
    ),
    "intruder_holds_ledger": (
        "Angriparen har den här leveransen och projektets tidigare leveranser i loggen ({earlier}), "
        "sammanfogade via pseudonymen.",
        "The intruder holds this delivery and the project's earlier deliveries on the ledger "
        "({earlier}), joined by the pseudonym.",
    ),
    "intruder_holds_none": ("inga hittills", "none so far"),
    "intruder_holds_alone": (
        "Angriparen har den här leveransen (ingen logg angavs, så tidigare leveranser söktes inte).",
        "The intruder holds this delivery (no ledger was given, so earlier deliveries were not looked for).",
    ),
    "intruder_guarantee": (
        "Varje person angriparen letar efter har minst {k} personer vars utlämnade rader stämmer med allt detta.",
        "Every person the intruder looks for has at least {k} persons whose released rows agree with all of it.",
    ),
    "intruder_statement": ("Rapportens mening (report.json):", "In the report's words (report.json):"),
    "intruder_not": (
        "Modellen täcker inte en angripare som känner till en persons insatser (de känsliga variablerna); "
        "l begränsar vad en grupp avslöjar om dem. Mer i docs/intruder-model.md.",
        "The model does not cover an intruder who knows a person's insatser (the sensitive variables); "
        "l bounds what a class reveals about them. More in docs/intruder-model.md.",
    ),
    "intruder_missing": (
        "Ingen kvasiidentifierare lämnas ut; ingen riskmätning gjordes.",
        "No quasi-identifier is delivered; no risk was measured.",
    ),
    # risk
    "risk": ("Risk före och efter skyddet", "Risk before and after treatment"),
    "before": ("före", "before"),
    "after": ("efter", "after"),
    "min_class": ("Minsta grupp (personer)", "Smallest class (persons)"),
    "below_k": ("Personer i grupper under k", "Persons in classes below k"),
    "uniques": ("Unika personer", "Unique persons"),
    "expected": ("Förväntade återidentifieringar", "Expected re-identifications"),
    "persons_col": ("Personer", "Persons"),
    "risk_explain": (
        "En grupp är de personer vars utlämnade rader över alla år är lika (ett undertryckt värde räknas "
        "som ett eget värde); förväntade återidentifieringar är summan över personerna av 1 / gruppens storlek.",
        "A class is the persons whose released rows over all their years are the same (a suppressed value "
        "counts as a value of its own); expected re-identifications are the sum over persons of 1 / class size.",
    ),
    "chart_sizes": ("Personer efter gruppens storlek", "Persons by the size of their class"),
    "chart_sizes_explain": (
        "Logaritmiska skalor: varje stapel räknar personerna vars grupp har en storlek i intervallet; "
        "till vänster om den streckade linjen ligger grupperna under k, som skyddet ska tömma.",
        "Log scales: each bar counts the persons whose class size lies in the range; left of the dashed "
        "line are the classes below k, which the treatment must empty.",
    ),
    "class_size": ("gruppens storlek (personer)", "class size (persons)"),
    "persons": ("personer", "persons"),
    "small_classes": ("Små grupper, en storlek i taget", "Small classes, one size at a time"),
    "small_explain": (
        "Gruppstorlekar upp till {limit} exakt: efter skyddet ska ingen person finnas i en grupp under k = {k}.",
        "Class sizes up to {limit} exactly: after treatment no person may be in a class below k = {k}.",
    ),
    "size": ("Storlek", "Size"),
    "classes_before": ("Grupper före", "Classes before"),
    "persons_before": ("Personer före", "Persons before"),
    "classes_after": ("Grupper efter", "Classes after"),
    "persons_after": ("Personer efter", "Persons after"),
    "chart_risk": (
        "Personer med minst en given återidentifieringsrisk",
        "Persons with at least a given re-identification risk",
    ),
    "chart_risk_explain": (
        "Logaritmiska skalor: en persons risk är 1 / gruppens storlek; kurvan räknar personerna med minst "
        "den risken, före och efter skyddet; den streckade linjen är 1/k.",
        "Log scales: a person's risk is 1 / class size; the curve counts the persons with at least that "
        "risk, before and after treatment; the dashed line is 1/k.",
    ),
    "risk_axis": ("risk (1 / gruppens storlek)", "risk (1 / class size)"),
    # l-diversity
    "ldiv": ("l-diversitet per känslig variabel", "l-diversity per sensitive variable"),
    "ldiv_explain": (
        "l är antalet olika värdemängder av variabeln (över personens år) som en persons grupp visar; "
        "l = 1 betyder att gruppen avslöjar variabeln för alla sina medlemmar. Policyn kräver l = {l}.",
        "l is the number of distinct value sets of the variable (over a person's years) a person's class "
        "shows; l = 1 means the class reveals the variable for all its members. The policy asks for l = {l}.",
    ),
    "ldiv_none": ("Inga känsliga variabler lämnas ut.", "No sensitive variable is delivered."),
    "variable": ("Variabel", "Variable"),
    "min_l": ("Minsta l", "Smallest l"),
    "persons_l": ("Personer med l = {l}", "Persons with l = {l}"),
    "persons_l3": ("Personer med l ≥ 3", "Persons with l ≥ 3"),
    # trajectories
    "traj": ("Personer efter antal år i uttaget", "Persons by the number of years in the extract"),
    "traj_explain": (
        "Logaritmisk skala: personerna efter hur många år de finns med i uttaget, och hur många av dem som "
        "före skyddet var i en grupp under k, fick ett värde undertryckt eller undantogs helt; en ovanlig "
        "historik är lätt att känna igen, och där behövs skyddet.",
        "Log scale: persons by the number of years they are in the extract, and how many of them were in "
        "a class below k before treatment, got a value suppressed or were withheld altogether; a rare "
        "history is easy to recognise, and that is where protection is needed.",
    ),
    "years_in": ("år i uttaget", "years in the extract"),
    "years_col": ("År", "Years"),
    "traj_persons": ("personer", "persons"),
    "traj_below": ("under k före", "below k before"),
    "traj_suppressed": ("med undertryckt värde", "with a suppressed value"),
    "traj_withheld": ("undantagna", "withheld"),
    # membership
    "membership": ("Medlemskap", "Membership"),
    "membership_text": (
        "Att finnas i en LSS-leverans avslöjar en funktionsnedsättning. Leveransen omfattar högst {share} "
        "av en befolkningsgrupp ({worst}; {groups} grupper); {bound}.",
        "Being in an LSS delivery reveals a disability. The delivery covers at most {share} of a population "
        "group ({worst}; {groups} groups); {bound}.",
    ),
    "membership_bound": ("policyn tillåter {bound}", "the policy allows {bound}"),
    "membership_nobound": ("policyn sätter ingen gräns", "the policy sets no bound"),
    "membership_none": (
        "Ingen befolkningstabell angavs (prepare --population FIL), så medlemskap mättes inte.",
        "No population table was given (prepare --population FILE), so membership was not measured.",
    ),
    "chart_membership": (
        "Befolkningsgrupper efter leveransens andel",
        "Population groups by the delivery's share",
    ),
    "chart_membership_explain": (
        "Logaritmisk skala: andelen är levererade personer delat med befolkningen i gruppen (år, kön, "
        "åldersgrupp, region); ju högre andel, desto troligare att en person i gruppen finns i leveransen.",
        "Log scale: the share is the persons delivered over the population of the group (year, sex, age "
        "band, region); the higher it is, the likelier a person of the group is in the delivery.",
    ),
    "share_axis": ("leveransens andel av gruppen", "the delivery's share of the group"),
    "groups": ("grupper", "groups"),
    "no_population": ("utan befolkning", "no population"),
    # treatment and refusal
    "treatment": ("Vad skyddet gjorde", "What the treatment did"),
    "drivers": ("Vad som orsakar avslaget", "What drives the refusal"),
    "drivers_failed": ("Kontroller som inte är uppfyllda:", "Checks that fail:"),
    "drivers_variables": (
        "Variablerna som undertrycks mest: {variables}.",
        "The variables suppressed most: {variables}.",
    ),
    "treatment_text": (
        "{share} av raderna har ett undertryckt värde eller är undantagna; {withheld} personer ({rows} rader) "
        "undantas eftersom ingen undertryckning skyddade deras år.",
        "{share} of rows carry a suppressed value or are withheld; {withheld} persons ({rows} rows) are "
        "withheld because no suppression protected their years.",
    ),
    "levels": ("Personer efter undertryckta variabler", "Persons by the variables suppressed"),
    "levels_explain": (
        "Skyddet undertrycker variabler på alla en persons rader, från den minsta mängden och i policyns "
        "ordning; varje mängd bildar egna grupper som själva måste nå k.",
        "The treatment suppresses variables on every row of a person, from the smallest set and in the "
        "policy's order; each set forms classes of its own that must reach k on their own.",
    ),
    "suppressed_set": ("Undertryckta variabler", "Variables suppressed"),
    "nothing": ("inga", "none"),
    "withheld_row": ("undantagna (hela personen)", "withheld (the whole person)"),
    "per_variable": ("Undertryckning per variabel", "Suppression per variable"),
    "per_variable_explain": (
        "Rader och personer där variabeln är undertryckt, störst först; andelen är av alla valda rader.",
        "Rows and persons where the variable is suppressed, largest first; the share is of all selected rows.",
    ),
    "rows_col": ("Rader", "Rows"),
    "share_col": ("Andel", "Share"),
    "options": ("Vad som skulle göra kandidaten utlämningsbar", "What would make it releasable"),
    "options_explain": (
        "Varje ändring av uttaget har behandlats och kontrollerats igen av grindens egen behandling "
        "(k, l, andel och roller; medlemskap mäts inte igen). Värden som inte visas: andelen av "
        "kvasiidentifierarnas värden som är undertryckta, undantagna eller bortlämnade.",
        "Each change to the extract was treated and checked again by the gate's own treatment (k, l, "
        "share and roles; membership is not measured again). Values not shown: the share of the "
        "quasi-identifiers' values that are suppressed, withheld or left out.",
    ),
    "options_lattice": (
        "Gittersökningen (lsssdc.disclosure.lattice) körs inte här: den mäter k per rad, inte personernas "
        "historik över alla år som grinden gör, så dess närmaste alternativ kunde ändå avslås.",
        "The lattice search (lsssdc.disclosure.lattice) is not run here: it measures k per row, not the "
        "persons' histories over all years as the gate does, so its nearest option could still be refused.",
    ),
    "change": ("Ändring", "Change"),
    "as_prepared": ("som framställd", "as prepared"),
    "leave_out": ("utelämna {variables}", "leave out {variables}"),
    "wider_age_bands": ("bredare åldersgrupper: {bands}", "wider age bands: {bands}"),
    "record_share": ("Behandlade rader", "Rows treated"),
    "withheld_persons": ("Undantagna personer", "Persons withheld"),
    "not_shown": ("Värden som inte visas", "Values not shown"),
    "outcome": ("Utfall", "Outcome"),
    "ok_outcome": ("kan lämnas ut", "releasable"),
    "refused_outcome": ("avslås ({checks})", "refused ({checks})"),
    "nearest": (
        "Närmaste utlämningsbara alternativ: {change} ({share} av raderna behandlade, {lost} av värdena visas inte).",
        "Nearest releasable option: {change} ({share} of rows treated, {lost} of values not shown).",
    ),
    "nearest_none": (
        "Ingen av de prövade ändringarna räcker. Policyns tak för behandlade rader skulle behöva vara minst "
        "{share}; annars behövs grövre nivåer eller färre år eller variabler i beställningen.",
        "None of the changes tried is enough. The policy's ceiling for rows treated would have to be at "
        "least {share}; otherwise coarser levels or fewer years or variables in the order are needed.",
    ),
    "no_options": (
        "Avslaget beror inte på skyddets figurer (k, l, andel); se kontrollerna ovan.",
        "The refusal does not come from the treatment's figures (k, l, share); see the checks above.",
    ),
    # information loss
    "loss": ("Informationsförlust", "Information loss"),
    "loss_text": (
        "{not_shown} av kvasiidentifierarnas värden visas inte (undertryckta eller undantagna); "
        "{withheld} av raderna ({rows}) undantas.",
        "{not_shown} of the quasi-identifiers' values are not shown (suppressed or withheld); "
        "{withheld} of rows ({rows}) are withheld.",
    ),
    "generalised": ("Generalisering", "Generalisation"),
    "categories": ("{before} → {after} kategorier", "{before} → {after} categories"),
    "as_registered": ("som i registret", "as registered"),
    "suppressed_share": ("Undertryckt andel", "Suppressed share"),
    "tvd": ("Totalvariationsavstånd", "Total variation distance"),
    "loss_explain": (
        "Tre mått per variabel: hur långt den generaliserats, andelen levererade rader där den är "
        "undertryckt, och totalvariationsavståndet mellan fördelningen i uttaget (vid de utlämnade "
        "kategorierna, före undertryckning och undantag) och de värden en användare ser (0: samma "
        "fördelning, 1: helt skild).",
        "Three measures per variable: how far it was generalised, the share of delivered rows where it is "
        "suppressed, and the total variation distance between its distribution in the extract (at the "
        "released categories, before suppression and withholding) and the values a user sees (0: the same "
        "distribution, 1: entirely different).",
    ),
    "chart_loss": ("Informationsförlust per variabel", "Information loss per variable"),
    "chart_loss_explain": (
        "Undertryckt andel och totalvariationsavstånd per utlämnad variabel, på samma skala (0–1).",
        "Suppressed share and total variation distance per delivered variable, on one scale (0–1).",
    ),
    "share_scale": ("andel", "share"),
    # order, policy, inputs, population, linkage, recodings, tables
    "order": ("Beställning", "Order"),
    "order_id": ("Beställning", "Order"),
    "diarienummer": ("Diarienummer", "Diarienummer"),
    "project": ("Projekt", "Project"),
    "ethics": ("Etikgodkännande", "Ethics approval"),
    "recipient": ("Mottagare", "Recipient"),
    "purpose": ("Syfte", "Purpose"),
    "years": ("År", "Years"),
    "order_file": ("Beställningsfil", "Order file"),
    "policy": ("Policy", "Policy"),
    "thresholds": ("Gränser", "Thresholds"),
    "thresholds_text": (
        "k = {k}, l = {l}, högst {share} av raderna med ett undertryckt värde, frekvensgräns för tabeller {tf}",
        "k = {k}, l = {l}, at most {share} of records with a suppressed value, table frequency threshold {tf}",
    ),
    "qis": ("Kvasiidentifierare", "Quasi-identifiers"),
    "sensitive": ("Känsliga", "Sensitive"),
    "policy_file": ("Policyfil", "Policy file"),
    "inputs": ("Underlag", "Inputs"),
    "input": ("Underlag", "Input"),
    "population": ("Population och variabler", "Population and variables"),
    "population_text": (
        "{persons} personer på {rows} rader (av registrets {register} rader). Urval:",
        "{persons} persons in {rows} rows (of {register} register rows). Selection:",
    ),
    "year": ("År", "Year"),
    "delivered": ("Utlämnade variabler", "Variables delivered"),
    "linkage": ("Samkörning", "Linkage"),
    "register": ("Register", "Register"),
    "key": ("Nyckel", "Key"),
    "matched": ("Matchade personer", "Matched persons"),
    "unmatched": ("Ej matchade", "Unmatched"),
    "match_share": ("Matchningsandel", "Match share"),
    "duplicates": ("Dubbletter", "Duplicates"),
    "changed_numbers": ("Ändrade nummer", "Changed numbers"),
    "samordningsnummer": ("Samordningsnr", "Samordningsnr"),
    "variables": ("Variabler", "Variables"),
    "recodings": ("Omkodningar", "Recodings"),
    "what_done": ("Vad som gjordes", "What was done"),
    "none": ("Inga.", "None."),
    "tables": ("Tabeller och angriparens granskning", "Tables and the attacker's audit"),
    "table": ("Tabell", "Table"),
    "cells": ("Celler", "Cells"),
    "primary": ("Primärt undertryckta", "Primary suppressed"),
    "secondary": ("Sekundärt undertryckta", "Secondary suppressed"),
    "audit": ("Granskning", "Audit"),
    "audit_ok": ("godkänd", "passed"),
    "audit_failed": ("EJ GODKÄND", "FAILED"),
    "table_history": ("Tidigare leveranser som angriparen håller", "Earlier deliveries the attacker holds"),
    "table_history_text": (
        "Tabellpaket för samma år: {tables}. Mikrodatauttag för samma år: {extracts}.",
        "Table packages of the same years: {tables}. Microdata extracts of the same years: {extracts}.",
    ),
    "cell_key": ("Cellnyckelmetoden: brus och fel per cell", "The cell key method: noise and error per cell"),
    "cell_key_text": (
        "Varje cell, även summor, har fått brus ur personernas nycklar: samma personer ger samma "
        "brus i varje tabell, beställning och år. Brus högst ±{d}, varians {v}; antal 1 till {js1} "
        "visas aldrig; nollor förblir nollor. Tabellerna summerar inte.",
        "Every cell, margins too, got noise from its persons' keys: the same persons give the same "
        "noise in every table, order and year. Noise at most ±{d}, variance {v}; counts 1 to {js1} "
        "are never shown; zeros stay zero. The tables do not add up.",
    ),
    "mae": ("Medelabsolutfel per cell", "Mean absolute error per cell"),
    "mae_leaves": ("i inre celler", "in inner cells"),
    "mae_margins": ("i summor", "in margins"),
    "max_error": ("Största fel", "Largest error"),
    "unchanged": ("Oförändrade celler", "Cells unchanged"),
    "verdict_section": ("Beslut", "Verdict"),
    # the short report that travels with the data
    "summary_title": ("Om leveransen {order}", "About delivery {order}"),
    "summary_intro": (
        "Den här korta rapporten följer med data. Den beskriver vad som lämnades ut och hur data "
        "skyddades, men inga riskmått; granskningsrapporten stannar hos den som lämnar ut.",
        "This short report travels with the data. It says what was released and how the data were "
        "protected, but holds no risk figures; the reviewer report stays with the releasing authority.",
    ),
    "summary_delivered": (
        "{rows} rader från {persons} personer, åren {years}.",
        "{rows} rows from {persons} persons, years {years}.",
    ),
    "summary_protection": ("Så skyddades data", "How the data were protected"),
    "summary_k": (
        "Varje person delar sina utlämnade rader över alla år med minst {k_minus} andra personer (k = {k}).",
        "Every person shares their released rows over all years with at least {k_minus} other persons (k = {k}).",
    ),
    "summary_suppressed": (
        'Ett undertryckt värde är ".." i textkolumner och tomt i numeriska (året); kolumnen "suppressed" '
        "namnger radens undertryckta variabler.",
        'A suppressed value is ".." in text columns and empty in numeric ones (the year); the column '
        '"suppressed" names the variables suppressed on each row.',
    ),
    "summary_withheld": (
        "{rows} rader från personer vars historik var för ovanlig för att skyddas lämnades inte ut.",
        "{rows} rows of persons whose history was too rare to protect were not released.",
    ),
    "summary_loss_explain": (
        "Per variabel: hur långt den generaliserats och andelen levererade rader där den är undertryckt.",
        "Per variable: how far it was generalised and the share of delivered rows where it is suppressed.",
    ),
    "summary_codebook": (
        "Variablernas innebörd och koder står i kodboken (codebook.md).",
        "The variables' meaning and codes are in the codebook (codebook.md).",
    ),
}

#: The register's rules an intruder applies (docs/DOMAIN.md's plausibility checks).
RULES: dict[str, tuple[str, str]] = {
    "R04": (
        "korttidstillsyn ges från det år personen fyller 12 till det år personen fyller 23",
        "korttidstillsyn from the year the person turns 12 to the year they turn 23",
    ),
    "R10": (
        "familjehem ges till och med det år personen fyller 25",
        "familjehem up to the year the person turns 25",
    ),
    "R11": (
        "bostad med särskild service för barn och ungdomar ges till och med det år personen fyller 25",
        "bostad med särskild service för barn och ungdomar up to the year the person turns 25",
    ),
    "R12": (
        "bostad med särskild service för vuxna ges från det år personen fyller 17",
        "bostad med särskild service för vuxna from the year the person turns 17",
    ),
    "R13": (
        "annan särskilt anpassad bostad ges från det år personen fyller 17",
        "annan särskilt anpassad bostad from the year the person turns 17",
    ),
    "R14": (
        "daglig verksamhet ges bara till personkrets 1 och 2",
        "daglig verksamhet only for personkrets 1 and 2",
    ),
    "R15": (
        "daglig verksamhet ges från det år personen fyller 16",
        "daglig verksamhet from the year the person turns 16",
    ),
    "R20": (
        "daglig verksamhet för personer över 70 ger en varning",
        "daglig verksamhet for persons over 70 raises a warning",
    ),
}

#: Checks whose figure and threshold are shares (shown as percentages).
SHARE_CHECKS = ("suppression", "membership")
#: Checks held to a lower bound (figure >= threshold); the others to an upper bound.
AT_LEAST = ("k", "l")


@dataclass(frozen=True)
class Lang:
    """One language's words and number formats."""

    code: str

    @property
    def i(self) -> int:
        return LANGS.index(self.code)

    def t(self, key: str, **kw: Any) -> str:
        text = TEXT[key][self.i] or TEXT[key][0]
        return text.format(**kw) if kw else text

    def n(self, v: float | int | None) -> str:
        """A count: 12 345 (sv) or 12,345 (en)."""
        if v is None:
            return "–"
        s = f"{int(round(v)):,}"
        return s.replace(",", NBSP) if self.code == SV else s

    def num(self, v: float | None, digits: int = 2) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "–"
        s = f"{v:,.{digits}f}"
        if self.code == SV:
            s = s.replace(",", " ").replace(".", ",").replace(" ", NBSP)
        return s

    def pct(self, v: float | None, digits: int = 2) -> str:
        """A share as a percentage: 14,16 % (sv) or 14.16 % (en)."""
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "–"
        return f"{self.num(100 * v, digits)}{NBSP}%"

    def join(self, items: list[str]) -> str:
        if len(items) < 2:
            return "".join(items)
        last = " och " if self.code == SV else " and "
        return ", ".join(items[:-1]) + last + items[-1]

    def check_title(self, name: str) -> str:
        key = f"check_{name}"
        return self.t(key) if key in TEXT else name

    def check_value(self, check: dict[str, Any], which: str) -> str:
        """A check's figure or threshold as text, with the comparison the gate makes."""
        v = check.get(which)
        if v is None:
            return "–"
        name = check["name"]
        text = self.pct(v) if name in SHARE_CHECKS else self.n(v)
        if which == "threshold":
            text = ("≥ " if name in AT_LEAST else "≤ ") + text
        return text

    def check_reason(self, check: dict[str, Any]) -> str:
        """The reason in this language: the gate's sentence (English) or one written from its figures."""
        if self.code == EN:
            return str(check["reason"])
        name, ok = check["name"], check["ok"]
        fig, thr = check.get("figure"), check.get("threshold")
        variables = ", ".join(check.get("variables") or [])
        if name == "roles" and fig is not None:
            return self.t("why_roles_ok") if ok else self.t("why_roles_fail", variables=variables)
        if name in ("k", "l") and fig is not None:
            return self.t(f"why_{name}", figure=self.n(fig), threshold=self.n(thr))
        if name == "suppression" and fig is not None:
            return self.t("why_suppression", figure=self.pct(fig), threshold=self.pct(thr))
        if name == "membership" and thr is not None:
            if fig is None:
                return self.t("why_membership_none", threshold=self.pct(thr, 0))
            return self.t("why_membership", figure=self.pct(fig), threshold=self.pct(thr, 0))
        if name == "identifiers" and fig is not None:
            if not ok:
                return self.t("why_identifiers_fail", variables=variables)
            tables = check["reason"] == "tables hold counts only"
            return self.t("why_identifiers_tables" if tables else "why_identifiers_ok")
        if name == "table_audit":
            return self.t("why_table_audit_ok") if ok else self.t("why_table_audit_fail", figure=self.n(fig))
        if name == "published_tables" and ok and fig is not None:
            return self.t("why_published_tables", figure=self.n(fig))
        return ""  # no Swedish sentence: the template shows the English one, marked as English

    def rule(self, implication: str) -> str:
        """'R12: bostad_vuxna -> age' as a sentence in this language."""
        code = implication.split(":", 1)[0].strip()
        text = RULES.get(code)
        return f"{code}: {text[self.i]}" if text else implication


LANGUAGES = tuple(Lang(c) for c in LANGS)


_LEVELS_SV = {
    "kommun": "kommun",
    "kommungrupp": "kommungrupp",
    "huvudgrupp": "huvudgrupp",
    "lan": "län",
    "riket": "riket",
}


def _fmt_amount(x: Any) -> str:
    v = float(x)
    return str(int(v)) if v == int(v) else str(v).replace(".", ",")


def recoding_sv(rec: dict[str, Any]) -> str:
    """A recoding record's description in Swedish (empty when there is no Swedish sentence for it)."""
    op, p = rec.get("operation"), rec.get("parameters") or {}
    if op == "age_bands" and p.get("cuts"):
        from lsssdc.coarsen import AgeBands

        labels = AgeBands(p["cuts"], open_top=p.get("open_top", True)).labels
        return "ålder vid mätdatum i grupperna " + ", ".join(labels)
    if op == "kommun_level" and p.get("level") in _LEVELS_SV:
        return f"{rec.get('source', rec.get('variable'))} grovkodad till {_LEVELS_SV[p['level']]}"
    if op == "merge_small_kommuner" and p.get("min_population"):
        return (
            f"kommuner med färre än {int(p['min_population']):,} invånare slås ihop med resten av sitt län "
            "(kod <län>R)"
        ).replace(",", NBSP)
    if op == "top_code" and p.get("limit") is not None:
        text = f"toppkodad vid {_fmt_amount(p['limit'])}"
        if p.get("bands"):
            text += ", i intervall från " + ", ".join(_fmt_amount(b) for b in p["bands"])
        return text
    if op == "date_precision":
        return {"year": "dödsdatum anges som år", "month": "dödsdatum anges som månad"}.get(
            rec.get("to_level", ""), ""
        )
    return ""
