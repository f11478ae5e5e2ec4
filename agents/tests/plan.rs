//! One plan per run, on every bundled symbol at a few dates: the final plan's direction is the
//! rating's, its risk is its size times the distance to its stop, a flat plan has no entry,
//! and every text the offline model writes quotes the plan as the plan writes itself.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use agents::market::bundled::BundledData;
use agents::model::{Catalog, Models, ModelsConfig, Usage};
use agents::plan::settle;
use agents::snapshot::MarketSnapshot;
use agents::{Pipeline, Reporter};
use async_trait::async_trait;
use chrono::NaiveDate;
use domain::{AnalysisResult, AnalystKind, Depth, Direction, Rating, RunOptions, Trade, TradePlan, ValidStart};
use serde_json::Value;

/// Keeps checkpoints, to read the run's market data back.
#[derive(Default)]
struct Checkpoints(Mutex<HashMap<String, Value>>);

#[async_trait]
impl Reporter for Checkpoints {
    type Error = ();

    fn checkpoint(&self, step: &str) -> Option<Value> {
        self.0.lock().unwrap().get(step).cloned()
    }
    async fn start_step(&self, _: &str, _: Option<&str>) -> Result<(), ()> {
        Ok(())
    }
    async fn step_progress(&self, _: &str, _: u8, _: Option<&str>) -> Result<(), ()> {
        Ok(())
    }
    async fn complete_step(&self, step: &str, output: Value, _: Usage, _: &str) -> Result<(), ()> {
        self.0.lock().unwrap().insert(step.into(), output);
        Ok(())
    }
    async fn save_turn(&self, _: &str, key: &str, _: u8, output: Value, _: Usage, _: &str) -> Result<(), ()> {
        self.0.lock().unwrap().insert(key.into(), output);
        Ok(())
    }
    async fn daily_left(&self) -> Result<Option<domain::Budget>, ()> {
        Ok(None)
    }
}

fn market() -> Arc<BundledData> {
    Arc::new(BundledData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market")).unwrap())
}

/// What a plan must be, whoever made it: `what` names it in failures.
fn check_plan(p: &TradePlan, what: &str) {
    match p.levels {
        None => {
            assert_eq!(p.direction, Direction::Flat, "{what}: only a flat plan has no entry");
            assert_eq!((p.size_pct, p.risk_pct), (0.0, 0.0), "{what}: a flat plan risks nothing");
        }
        Some(l) => {
            let s = p.direction.sign();
            assert!(s != 0.0, "{what}: a flat plan has no entry, has {l:?}");
            assert!((l.entry - l.stop) * s > 0.0, "{what}: the stop {} is on the losing side of {}", l.stop, l.entry);
            assert!((l.target - l.entry) * s > 0.0, "{what}: the target is on the winning side");
            // Stated to the decimal: the size to a tenth, the risk to a hundredth of a percent.
            assert_eq!(p.size_pct, (p.size_pct * 10.0).round() / 10.0, "{what}");
            assert!(p.size_pct > 0.0 && p.size_pct <= 15.0 * 1.5, "{what}: size {}", p.size_pct);
            let risk = p.size_pct * (l.entry - l.stop).abs() / l.entry;
            assert!((p.risk_pct - risk).abs() <= 0.005 + 1e-9, "{what}: risk {} is {risk}", p.risk_pct);
            assert!(p.horizon_days >= 5 && p.horizon_days <= 60, "{what}: horizon {}", p.horizon_days);
            for (n, reason) in [("entry", &p.why.entry), ("stop", &p.why.stop), ("target", &p.why.target)] {
                assert!(!reason.is_empty(), "{what}: no reason for the {n}");
            }
        }
    }
    assert!(!p.why.direction.is_empty() && !p.why.size.is_empty() && !p.why.horizon.is_empty(), "{what}");
}

fn check_trade(t: &Trade, rating: Rating, what: &str) {
    assert_eq!(t.plan.direction, Direction::of_rating(rating), "{what}: the plan's direction is the rating's");
    check_plan(&t.plan, &format!("{what}, final"));
    if let Some(p) = &t.proposed {
        check_plan(p, &format!("{what}, proposed"));
        assert_eq!(t.changes.is_empty(), p.line() == t.plan.line(), "{what}: changes are named when they differ");
    }
}

fn check_result(r: &AnalysisResult, what: &str) {
    let t = r.trade.as_ref().unwrap_or_else(|| panic!("{what}: a trade"));
    check_trade(t, r.rating, what);
    let line = t.plan.line();
    assert!(r.summary.contains(&line), "{what}: the summary quotes the plan\n{line}\n{}", r.summary);
    if let Some(team) = &r.team {
        assert!(team.decision.contains(&line), "{what}: the decision quotes the plan\n{}", team.decision);
        let proposed = t.proposed.as_ref().expect("a team run has the trader's proposal");
        assert!(proposed.reasoning.contains(&proposed.line()), "{what}: the trader quotes its plan");
        for c in &t.changes {
            assert!(team.decision.contains(&format!("- {} ", c.what)), "{what}: the decision names {}", c.what);
        }
    }
}

/// Every bundled symbol at its last date and one and three years before, quick and standard,
/// and the final plan for every rating from each run's data and proposal.
#[tokio::test]
async fn every_plan_agrees_with_its_rating_and_states_its_risk() {
    let market = market();
    let models = Models::new(Catalog::builtin(), &|_| None, reqwest::Client::new(), ModelsConfig::default());
    let pipeline = Pipeline::new(market.clone(), Arc::new(models));
    let mut ratings = BTreeSet::new();
    let mut runs = 0;
    for series in market.all_series() {
        let last = series.last_date().unwrap();
        let dates: Vec<NaiveDate> = [0, 252, 756]
            .iter()
            .filter_map(|back| series.bars.len().checked_sub(back + 1))
            // A year of history before the as-of date, which an analysis needs.
            .filter(|i| *i >= 260)
            .map(|i| series.bars[i].date)
            .collect();
        if series.bars.len() < 261 {
            // FB: its ticker's 2012–2013 months; META carries on from there.
            assert!(dates.is_empty(), "{}", series.symbol);
            continue;
        }
        assert_eq!(dates[0], last, "{}", series.symbol);
        for as_of in dates {
            for depth in [Depth::Quick, Depth::Standard] {
                let spec = ValidStart {
                    symbol: series.symbol.parse().unwrap(),
                    model_id: "offline".parse().unwrap(),
                    analysts: AnalystKind::ALL.to_vec(),
                    as_of: Some(as_of),
                    options: RunOptions { depth, rounds: Some(2), ..RunOptions::default() },
                };
                let reporter = Checkpoints::default();
                let what = format!("{} {as_of} {depth}", series.symbol);
                let r = pipeline.run(&spec, &reporter).await.unwrap_or_else(|_| panic!("{what} runs"));
                check_result(&r, &what);
                ratings.insert(r.rating.as_str());
                runs += 1;

                let data: MarketSnapshot =
                    serde_json::from_value(reporter.checkpoint("Data Collection").unwrap()["output"].clone()).unwrap();
                let trade = r.trade.as_ref().unwrap();
                let risk_debate = r.team.as_ref().map(|t| t.risk_debate.clone()).unwrap_or_default();
                for rating in Rating::ALL {
                    let what = format!("{what} rated {}", rating.as_str());
                    check_trade(&settle(&data, trade.proposed.as_ref(), &risk_debate, rating), rating, &what);
                    check_trade(&settle(&data, None, &[], rating), rating, &format!("{what} without a trader"));
                }
            }
        }
    }
    assert!(runs >= 50, "{runs} runs");
    assert!(ratings.len() >= 3, "the runs reach several ratings: {ratings:?}");
}

/// The bullet points of a turn: the figures it brings.
fn bullets(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.strip_prefix("- ")).collect()
}

/// Deep offline runs of every bundled symbol (three rounds asked for): each side brings figures
/// it has not used before, each later turn quotes the other side's last opening figure, a side
/// out of figures says so and the debate stops there; the risk analysts argue from the plan's
/// direction (a fall helps a short); two analysts reading RSI read it alike.
#[tokio::test]
async fn the_debates_move_on_and_argue_from_the_trade() {
    use domain::TeamRole::*;
    let market = market();
    let models = Models::new(Catalog::builtin(), &|_| None, reqwest::Client::new(), ModelsConfig::default());
    let pipeline = Pipeline::new(market.clone(), Arc::new(models));
    let (mut full, mut early, mut shorts) = (0, 0, 0);
    for series in market.all_series().into_iter().filter(|s| s.bars.len() > 300) {
        let spec = ValidStart {
            symbol: series.symbol.parse().unwrap(),
            model_id: "offline".parse().unwrap(),
            analysts: AnalystKind::ALL.to_vec(),
            as_of: None,
            options: RunOptions { depth: Depth::Deep, rounds: Some(3), ..RunOptions::default() },
        };
        let r = pipeline.run(&spec, &Checkpoints::default()).await.unwrap();
        let what = &series.symbol;
        let team = r.team.as_ref().unwrap();
        let argued = team.debate.iter().map(|a| a.round).max().unwrap();
        for role in [BullResearcher, BearResearcher] {
            let turns: Vec<&domain::Argument> = team.debate.iter().filter(|a| a.role == role).collect();
            let mut seen = BTreeSet::new();
            for t in &turns {
                for b in bullets(&t.text) {
                    assert!(seen.insert(b), "{what}: {role:?} repeats \"{b}\" in round {}", t.round);
                }
            }
            for pair in turns.windows(2) {
                assert_ne!(bullets(&pair[0].text), bullets(&pair[1].text), "{what}: {role:?}'s rounds differ");
            }
            let other = if role == BullResearcher { BearResearcher } else { BullResearcher };
            for t in turns.iter().filter(|t| t.round > 1) {
                let before = team.debate.iter().find(|a| a.role == other && a.round + 1 == t.round).unwrap();
                let opening = bullets(&before.text)[0].trim_end_matches('.');
                assert!(t.text.contains(&format!("argued: \"{opening}\"")), "{what}: {} answers {opening}", t.text);
            }
        }
        let rested = team.debate.iter().filter(|a| a.rests).map(|a| a.round).collect::<Vec<_>>();
        match argued {
            3 => full += 1,
            _ => {
                early += 1;
                assert_eq!(rested.first(), Some(&argued), "{what}: the debate stopped early because a side rested");
                let last = team.debate.iter().find(|a| a.rests).unwrap();
                assert!(last.text.contains("nothing new") || last.text.contains("I rest"), "{}", last.text);
            }
        }
        assert!(rested.iter().all(|round| *round == argued), "{what}: nobody rests before the last round");

        let plan = r.trade.as_ref().unwrap().proposed.clone().unwrap();
        let risk_rounds: BTreeSet<u32> = team.risk_debate.iter().map(|a| a.round).collect();
        for a in &team.risk_debate {
            let t = &a.text;
            match plan.direction {
                Direction::Flat => assert!(t.contains("no position"), "{what}: {t}"),
                way => {
                    shorts += usize::from(way == Direction::Short);
                    assert!(t.contains(&format!("Proposal for the {way} at")), "{what}: {t}");
                    if a.role == ConservativeRisk {
                        let fear =
                            if way == Direction::Short { "a short loses on a rise" } else { "a long loses on a fall" };
                        assert!(t.contains(fear), "{what}: the conservative fears the move against the {way}: {t}");
                    }
                    // "Riding the trend" only when the trend is the trade's way.
                    if t.contains(&format!("the way this {way} bets")) {
                        let side = if way == Direction::Short { "below" } else { "above" };
                        assert!(t.contains(&format!("{side} its 200-day average")), "{what}: {t}");
                    }
                    if a.round > 1 {
                        assert!(t.contains("analyst said: \""), "{what}: round {} answers: {t}", a.round);
                    }
                }
            }
        }
        if plan.direction != Direction::Flat {
            for role in [AggressiveRisk, ConservativeRisk, NeutralRisk] {
                let texts: Vec<&str> =
                    team.risk_debate.iter().filter(|a| a.role == role).map(|a| a.text.as_str()).collect();
                assert_eq!(texts.len(), risk_rounds.len());
                // A turn that rests brings no reason; every other leads with a new one.
                let leads: Vec<&str> = texts.iter().filter_map(|t| bullets(t).first().copied()).collect();
                let firsts: BTreeSet<&str> = leads.iter().copied().collect();
                assert_eq!(firsts.len(), leads.len(), "{what}: {role:?} leads each round with another reason");
            }
        }

        let rsi = |kind: AnalystKind| {
            let report = r.reports.iter().find(|x| x.analyst == kind).unwrap();
            report.report.lines().find(|l| l.contains("RSI")).map(str::to_string)
        };
        assert_eq!(rsi(AnalystKind::Sentiment), rsi(AnalystKind::Technical), "{what}: one reading of RSI");
    }
    assert!(full > 0 && early > 0, "some debates run all three rounds ({full}), some end early ({early})");
    assert!(shorts > 0, "some trades are shorts, argued as shorts");
}

/// Deep offline runs of every bundled symbol with five rounds asked for: the risk analysts
/// have three reasons each, so after three rounds (or one, on a plan with no position) they
/// have nothing new; they say so in the round after and rest, their last proposals standing,
/// and the debate stops there rather than repeat itself.
#[tokio::test]
async fn the_risk_debate_ends_when_it_runs_out_of_arguments() {
    let market = market();
    let models = Models::new(Catalog::builtin(), &|_| None, reqwest::Client::new(), ModelsConfig::default());
    let pipeline = Pipeline::new(market.clone(), Arc::new(models));
    let (mut positions, mut flats) = (0, 0);
    for series in market.all_series().into_iter().filter(|s| s.bars.len() > 300) {
        let spec = ValidStart {
            symbol: series.symbol.parse().unwrap(),
            model_id: "offline".parse().unwrap(),
            analysts: AnalystKind::ALL.to_vec(),
            as_of: None,
            options: RunOptions { depth: Depth::Deep, rounds: Some(5), ..RunOptions::default() },
        };
        let r = pipeline.run(&spec, &Checkpoints::default()).await.unwrap();
        let what = &series.symbol;
        let team = r.team.as_ref().unwrap();
        let plan = r.trade.as_ref().unwrap().proposed.clone().unwrap();
        let last = team.risk_debate.iter().map(|a| a.round).max().unwrap();
        let flat = plan.direction == Direction::Flat;
        if flat {
            flats += 1;
            assert_eq!(last, 1, "{what}: a plan with no position is argued once");
        } else {
            positions += 1;
            assert!(last <= 4, "{what}: three reasons each, rested by round four, not {last}");
        }
        for a in &team.risk_debate {
            assert_eq!(a.rests, a.round == last, "{what}: {:?} round {} rests only in the last round", a.role, a.round);
            if a.rests {
                assert!(a.text.contains("nothing new"), "{what}: a resting turn says why: {}", a.text);
                assert!(bullets(&a.text).is_empty() || flat, "{what}: a resting turn brings no new reason");
            }
            if a.rests && !flat {
                // The proposal stands as the same analyst last made it.
                let before = team.risk_debate.iter().find(|b| b.role == a.role && b.round + 1 == a.round).unwrap();
                assert_eq!((a.position_size, a.stop_loss), (before.position_size, before.stop_loss), "{what}");
            }
        }
        check_result(&r, what);
    }
    assert!(positions > 0 && flats > 0, "both kinds of plan are argued: {positions} with a position, {flats} flat");
}
