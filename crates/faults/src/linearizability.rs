//! A linearizability checker for a key-value store whose keys are registers
//! (read, put, compare-and-set, delete), with indeterminate operations.
//!
//! Written here rather than taken from a crate: the Rust crates that check
//! linearizability are unmaintained, or want a model per call and no notion
//! of an operation that may or may not have taken effect, and the whole
//! algorithm is ~250 lines that we must be able to read when it reports a
//! violation in rustcd. It is Wing & Gong's search with Lowe's memoisation
//! (the algorithm of Knossos and Porcupine):
//!
//! * The history is split per key (P-compositionality: every operation
//!   touches one key, and a history is linearizable iff each key's
//!   sub-history is).
//! * For one key, invocation and completion events are put in time order in
//!   a doubly linked list. The search repeatedly picks a pending operation
//!   that was invoked before the earliest completion still in the list,
//!   applies it to the model if the model allows it ("linearizes" it) and
//!   removes its two events; when it meets a completion whose operation could
//!   not be linearized in time, it backtracks. A set of
//!   `(linearized operations, register value)` already explored cuts every
//!   repeated branch (Lowe's memoisation), which makes the search practical.
//! * An indeterminate operation (timed out, connection lost after send) never
//!   completes: its completion is at +infinity, so it may be linearized at
//!   any point after its invocation, or not at all. The search succeeds once
//!   every operation with a known outcome is linearized.
//! * A definitely failed operation took no effect and is left out.
//!
//! Values are unique per write (the clients make them so), which gives two
//! cheap rules before the search: a value that is observed but that no
//! (non-failed) write produced is a violation on its own (a read from
//! nowhere, or a write that reported a definite failure and still took
//! effect); and an indeterminate put / CAS whose value nobody ever observed
//! is dropped, since dropping it from any linearization leaves a valid
//! linearization (every later operation that observes the register would
//! have observed that value). This keeps the many timed-out writes of a
//! partition from blowing up the search. The rule is only applied to a key
//! whose operations all report what they observed (a failed CAS must report
//! the value it saw), which the harness's clients always do.

use std::collections::{HashMap, HashSet};
use std::fmt;

/// A register value. Writers make every value unique.
pub type Value = u64;

/// A key's state: `None` while the key does not exist.
pub type State = Option<Value>;

/// What a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// A linearizable read.
    Read,
    /// A put of a fresh value.
    Put(Value),
    /// Put `new` if the key currently holds `expected` (a Txn comparing the
    /// value); a missing key never compares equal.
    Cas { expected: Value, new: Value },
    /// Delete the key.
    Delete,
}

/// What the client learned about the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It took effect. `seen`: the key's state just before it did, when the
    /// response says so (a read's result; `prev_kv` of a put, delete or a
    /// successful CAS); `None` when the response does not tell.
    Ok { seen: Option<State> },
    /// A CAS whose comparison failed (no effect); `seen`: the state its
    /// failure branch read, when it read one.
    CasFailed { seen: Option<State> },
    /// It failed and certainly had no effect.
    Failed,
    /// Timed out or lost after it was sent: it may have taken effect, at any
    /// time after its invocation, or not at all.
    Indeterminate,
}

/// One operation of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub key: String,
    pub call: Call,
    pub outcome: Outcome,
    /// When the client sent it (any monotonic clock, e.g. ns since start).
    pub invoke: u64,
    /// When the client got the answer; ignored for `Indeterminate`.
    pub complete: u64,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = |s: &State| match s {
            Some(v) => v.to_string(),
            None => "absent".to_string(),
        };
        let call = match self.call {
            Call::Read => "read".to_string(),
            Call::Put(v) => format!("put {v}"),
            Call::Cas { expected, new } => format!("cas {expected} -> {new}"),
            Call::Delete => "delete".to_string(),
        };
        let out = match &self.outcome {
            Outcome::Ok { seen: Some(s) } if self.call == Call::Read => format!("= {}", st(s)),
            Outcome::Ok { seen: Some(s) } => format!("ok (was {})", st(s)),
            Outcome::Ok { seen: None } => "ok".to_string(),
            Outcome::CasFailed { seen: Some(s) } => format!("compare failed (was {})", st(s)),
            Outcome::CasFailed { seen: None } => "compare failed".to_string(),
            Outcome::Failed => "failed".to_string(),
            Outcome::Indeterminate => "indeterminate".to_string(),
        };
        let secs = |t: u64| t as f64 / 1e9;
        if self.outcome == Outcome::Indeterminate {
            write!(
                f,
                "[{:.6}s .. ?] client {} {} {}: {}",
                secs(self.invoke),
                self.client,
                self.key,
                call,
                out
            )
        } else {
            write!(
                f,
                "[{:.6}s .. {:.6}s] client {} {} {}: {}",
                secs(self.invoke),
                secs(self.complete),
                self.client,
                self.key,
                call,
                out
            )
        }
    }
}

/// The model: the state after `op` runs on `state`, or `None` if the
/// outcome is impossible from `state`.
fn step(state: State, call: Call, outcome: Outcome) -> Option<State> {
    let seen_ok = |seen: Option<State>| seen.is_none_or(|s| s == state);
    match (call, outcome) {
        (_, Outcome::Failed) => None,
        (Call::Read, Outcome::Ok { seen }) => seen_ok(seen).then_some(state),
        (Call::Read, _) => Some(state),
        (Call::Put(v), Outcome::Ok { seen }) => seen_ok(seen).then_some(Some(v)),
        (Call::Put(v), _) => Some(Some(v)),
        (Call::Delete, Outcome::Ok { seen }) => seen_ok(seen).then_some(None),
        (Call::Delete, _) => Some(None),
        (Call::Cas { expected, new }, Outcome::Ok { seen }) => {
            (state == Some(expected) && seen_ok(seen)).then_some(Some(new))
        }
        (Call::Cas { expected, .. }, Outcome::CasFailed { seen }) => {
            (state != Some(expected) && seen_ok(seen)).then_some(state)
        }
        (Call::Cas { expected, new }, Outcome::Indeterminate) => Some(if state == Some(expected) {
            Some(new)
        } else {
            state
        }),
    }
}

/// What a successful check looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub keys: usize,
    /// Operations searched (after leaving out failed ones and pruning).
    pub ops: usize,
    /// Indeterminate writes dropped because nobody observed their value.
    pub pruned: usize,
    /// Search steps taken, over all keys.
    pub steps: u64,
}

/// Why a history was not accepted.
#[derive(Clone, Debug)]
pub enum CheckError {
    /// Not linearizable; the text says where it got stuck.
    Violation { key: String, explanation: String },
    /// The search ran out of its step budget (too much concurrency).
    TooHard { key: String, ops: usize, steps: u64 },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Violation { key, explanation } => {
                write!(f, "NOT LINEARIZABLE on key {key}:\n{explanation}")
            }
            CheckError::TooHard { key, ops, steps } => write!(
                f,
                "gave up on key {key} ({ops} ops) after {steps} search steps: too much concurrency"
            ),
        }
    }
}

/// Default search budget per key.
pub const DEFAULT_BUDGET: u64 = 50_000_000;

/// Checks that `history` is linearizable for a map of registers that all
/// start absent.
pub fn check(history: &[Op]) -> Result<Report, CheckError> {
    check_with_budget(history, DEFAULT_BUDGET)
}

/// [`check`] with an explicit search budget (steps per key).
pub fn check_with_budget(history: &[Op], budget: u64) -> Result<Report, CheckError> {
    let mut by_key: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut keys: Vec<&str> = by_key.keys().copied().collect();
    keys.sort_unstable();
    let mut report = Report {
        keys: keys.len(),
        ..Report::default()
    };
    for key in keys {
        let ops = prepare(key, &by_key[key], &mut report)?;
        report.ops += ops.len();
        report.steps += search(key, &ops, budget)?;
    }
    Ok(report)
}

/// Leaves out what cannot matter, applies the unique-value rules.
fn prepare<'a>(key: &str, ops: &[&'a Op], report: &mut Report) -> Result<Vec<&'a Op>, CheckError> {
    // Values some operation that may have taken effect wrote.
    let mut written: HashSet<Value> = HashSet::new();
    // Values that were written only by operations that certainly did not.
    let mut failed_writes: HashMap<Value, &Op> = HashMap::new();
    for op in ops {
        let v = match op.call {
            Call::Put(v) | Call::Cas { new: v, .. } => v,
            _ => continue,
        };
        match op.outcome {
            Outcome::Failed | Outcome::CasFailed { .. } => {
                failed_writes.insert(v, op);
            }
            _ => {
                written.insert(v);
            }
        }
    }
    // Values somebody observed, and every CAS's expected value.
    let mut observed: HashSet<Value> = HashSet::new();
    let mut blind_cas_failure = false;
    for op in ops {
        if let Call::Cas { expected, .. } = op.call {
            observed.insert(expected);
        }
        let seen = match op.outcome {
            Outcome::Ok { seen } => {
                if let Call::Cas { expected, .. } = op.call {
                    check_written(key, op, expected, &written, &failed_writes)?;
                }
                seen
            }
            Outcome::CasFailed { seen } => {
                blind_cas_failure |= seen.is_none();
                seen
            }
            _ => None,
        };
        if let Some(Some(v)) = seen {
            check_written(key, op, v, &written, &failed_writes)?;
            observed.insert(v);
        }
    }
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let keep = match (op.call, op.outcome) {
            (_, Outcome::Failed) => false,
            (Call::Read, Outcome::Indeterminate) => false,
            (Call::Read, Outcome::Ok { seen: None }) => false,
            (Call::Put(v) | Call::Cas { new: v, .. }, Outcome::Indeterminate)
                if !blind_cas_failure && !observed.contains(&v) =>
            {
                report.pruned += 1;
                false
            }
            _ => true,
        };
        if keep {
            out.push(*op);
        }
    }
    Ok(out)
}

fn check_written(
    key: &str,
    op: &Op,
    v: Value,
    written: &HashSet<Value>,
    failed: &HashMap<Value, &Op>,
) -> Result<(), CheckError> {
    if written.contains(&v) {
        return Ok(());
    }
    let explanation = match failed.get(&v) {
        Some(w) => format!(
            "{op}\nobserved value {v}, written only by an operation that reported it took no effect:\n{w}"
        ),
        None => format!("{op}\nobserved value {v}, which no operation on this key wrote"),
    };
    Err(CheckError::Violation {
        key: key.to_string(),
        explanation,
    })
}

/// The deepest point the search reached, for the explanation.
struct Stuck {
    linearized: usize,
    blocking: usize,
    state: State,
    prefix_tail: Vec<usize>,
    candidates: Vec<usize>,
}

/// Wing–Gong–Lowe search over one key's operations; returns steps taken.
fn search(key: &str, ops: &[&Op], budget: u64) -> Result<u64, CheckError> {
    let n = ops.len();
    if n == 0 {
        return Ok(0);
    }
    // Events: (time, is_return, op). At equal times calls come first, which
    // treats the two operations as concurrent (the permissive reading).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke, false, i));
        let done = if op.outcome == Outcome::Indeterminate {
            u64::MAX
        } else {
            op.complete.max(op.invoke)
        };
        events.push((done, true, i));
    }
    events.sort_unstable();
    // Linked list over event slots 1..=2n; 0 is the head, 2n+1 the tail.
    let tail = 2 * n + 1;
    let mut next: Vec<usize> = (1..=tail + 1).collect();
    let mut prev: Vec<usize> = (0..=tail).map(|i| i.wrapping_sub(1)).collect();
    let mut call_slot = vec![0; n];
    let mut ret_slot = vec![0; n];
    for (s, &(_, is_ret, op)) in events.iter().enumerate() {
        if is_ret {
            ret_slot[op] = s + 1;
        } else {
            call_slot[op] = s + 1;
        }
    }
    let is_ret = |slot: usize| events[slot - 1].1;
    let op_of = |slot: usize| events[slot - 1].2;

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut entry = next[0];
    let mut steps = 0u64;
    let mut stuck: Option<Stuck> = None;

    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, s: usize| {
        next[prev[s]] = next[s];
        prev[next[s]] = prev[s];
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, s: usize| {
        next[prev[s]] = s;
        prev[next[s]] = s;
    };

    while next[0] != tail {
        steps += 1;
        if steps > budget {
            return Err(CheckError::TooHard {
                key: key.to_string(),
                ops: n,
                steps,
            });
        }
        if !is_ret(entry) {
            let i = op_of(entry);
            if let Some(new_state) = step(state, ops[i].call, ops[i].outcome) {
                linearized[i / 64] |= 1 << (i % 64);
                if cache.insert((linearized.clone(), new_state)) {
                    stack.push((i, state));
                    state = new_state;
                    unlink(&mut next, &mut prev, call_slot[i]);
                    unlink(&mut next, &mut prev, ret_slot[i]);
                    entry = next[0];
                    continue;
                }
                linearized[i / 64] &= !(1 << (i % 64));
            }
            entry = next[entry];
        } else {
            let i = op_of(entry);
            if ops[i].outcome == Outcome::Indeterminate {
                // Only indeterminate operations are left: all done.
                return Ok(steps);
            }
            if stuck.as_ref().is_none_or(|s| stack.len() > s.linearized) {
                let mut candidates = Vec::new();
                let mut s = next[0];
                while s != entry {
                    if !is_ret(s) {
                        candidates.push(op_of(s));
                    }
                    s = next[s];
                }
                stuck = Some(Stuck {
                    linearized: stack.len(),
                    blocking: i,
                    state,
                    prefix_tail: stack.iter().rev().take(12).rev().map(|(o, _)| *o).collect(),
                    candidates,
                });
            }
            let Some((j, before)) = stack.pop() else {
                return Err(violation(key, ops, stuck.as_ref().unwrap()));
            };
            linearized[j / 64] &= !(1 << (j % 64));
            state = before;
            relink(&mut next, &mut prev, ret_slot[j]);
            relink(&mut next, &mut prev, call_slot[j]);
            entry = next[call_slot[j]];
        }
    }
    Ok(steps)
}

fn violation(key: &str, ops: &[&Op], s: &Stuck) -> CheckError {
    let st = match s.state {
        Some(v) => v.to_string(),
        None => "absent".to_string(),
    };
    let mut e = format!(
        "{} operations on this key; the longest linearizable prefix found has {} of them and leaves the key {}.\n",
        ops.len(),
        s.linearized,
        st
    );
    e.push_str("Last operations of that prefix, in linearization order:\n");
    for &o in &s.prefix_tail {
        e.push_str(&format!("  {}\n", ops[o]));
    }
    e.push_str(&format!(
        "This operation completed but cannot take effect there (nor can the prefix be reordered to allow it):\n  {}\n",
        ops[s.blocking]
    ));
    e.push_str("Operations invoked by then and not yet linearized:\n");
    for &o in s.candidates.iter().take(30) {
        e.push_str(&format!("  {}\n", ops[o]));
    }
    if s.candidates.len() > 30 {
        e.push_str(&format!("  ... and {} more\n", s.candidates.len() - 30));
    }
    CheckError::Violation {
        key: key.to_string(),
        explanation: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn op(client: usize, call: Call, outcome: Outcome, invoke: u64, complete: u64) -> Op {
        Op {
            client,
            key: "k".into(),
            call,
            outcome,
            invoke,
            complete,
        }
    }
    fn read(c: usize, v: State, t0: u64, t1: u64) -> Op {
        op(c, Call::Read, Outcome::Ok { seen: Some(v) }, t0, t1)
    }
    fn put(c: usize, v: Value, t0: u64, t1: u64) -> Op {
        op(c, Call::Put(v), Outcome::Ok { seen: None }, t0, t1)
    }
    fn lost(c: usize, call: Call, t0: u64) -> Op {
        op(c, call, Outcome::Indeterminate, t0, 0)
    }
    fn is_violation(r: Result<Report, CheckError>) -> bool {
        match r {
            Err(CheckError::Violation { explanation, .. }) => {
                assert!(!explanation.is_empty());
                true
            }
            Err(e) => panic!("{e}"),
            Ok(_) => false,
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = vec![
            read(0, None, 0, 1),
            put(0, 1, 2, 3),
            read(1, Some(1), 4, 5),
            op(
                1,
                Call::Cas {
                    expected: 1,
                    new: 2,
                },
                Outcome::Ok {
                    seen: Some(Some(1)),
                },
                6,
                7,
            ),
            op(
                0,
                Call::Cas {
                    expected: 1,
                    new: 3,
                },
                Outcome::CasFailed {
                    seen: Some(Some(2)),
                },
                8,
                9,
            ),
            op(
                0,
                Call::Delete,
                Outcome::Ok {
                    seen: Some(Some(2)),
                },
                10,
                11,
            ),
            read(1, None, 12, 13),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn catches_a_stale_read() {
        let h = vec![
            put(0, 1, 0, 10),
            put(0, 2, 20, 30),
            read(1, Some(1), 40, 50),
        ];
        assert!(is_violation(check(&h)));
        // The same read overlapping the second put is fine.
        let h = vec![
            put(0, 1, 0, 10),
            put(0, 2, 20, 30),
            read(1, Some(1), 25, 50),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn the_explanation_names_the_stuck_operation() {
        let h = vec![
            put(0, 1, 0, 10),
            put(1, 2, 20, 30),
            read(2, Some(1), 40, 50),
        ];
        let e = check(&h).unwrap_err().to_string();
        assert!(e.contains("client 2 k read: = 1"), "{e}");
        assert!(e.contains("longest linearizable prefix found has 2"), "{e}");
    }

    #[test]
    fn catches_a_lost_acknowledged_write() {
        let h = vec![put(0, 1, 0, 10), read(1, None, 20, 30)];
        assert!(is_violation(check(&h)));
        // Also when the loss shows only in the final read after other work.
        let h = vec![
            put(0, 1, 0, 10),
            read(1, Some(1), 11, 12),
            put(2, 2, 13, 20),
            read(1, Some(1), 30, 31),
        ];
        assert!(is_violation(check(&h)));
    }

    #[test]
    fn catches_two_cas_successes_from_the_same_value() {
        let cas = |c, new, t0, t1| {
            op(
                c,
                Call::Cas { expected: 1, new },
                Outcome::Ok {
                    seen: Some(Some(1)),
                },
                t0,
                t1,
            )
        };
        // Concurrent: only one of them can win.
        let h = vec![put(0, 1, 0, 10), cas(1, 2, 20, 30), cas(2, 3, 21, 31)];
        assert!(is_violation(check(&h)));
        // Without prev reports it is still caught by the model.
        let h = vec![
            put(0, 1, 0, 10),
            op(
                1,
                Call::Cas {
                    expected: 1,
                    new: 2,
                },
                Outcome::Ok { seen: None },
                20,
                30,
            ),
            op(
                2,
                Call::Cas {
                    expected: 1,
                    new: 3,
                },
                Outcome::Ok { seen: None },
                21,
                31,
            ),
        ];
        assert!(is_violation(check(&h)));
    }

    #[test]
    fn accepts_concurrent_histories() {
        // Two overlapping puts, readers seeing them in either order but
        // consistently with one order.
        let h = vec![
            put(0, 1, 0, 100),
            put(1, 2, 10, 90),
            read(2, Some(2), 20, 30),
            read(3, Some(1), 40, 120),
            read(2, Some(1), 130, 140),
        ];
        assert!(check(&h).is_ok());
        // But not a flip-flop after both completed.
        let h = vec![
            put(0, 1, 0, 100),
            put(1, 2, 10, 90),
            read(2, Some(2), 110, 120),
            read(3, Some(1), 130, 140),
        ];
        assert!(is_violation(check(&h)));
    }

    #[test]
    fn indeterminate_operations_may_or_may_not_take_effect() {
        // Seen later: fine.
        let h = vec![
            put(0, 1, 0, 10),
            lost(1, Call::Put(2), 20),
            read(2, Some(1), 30, 40),
            read(2, Some(2), 50, 60),
        ];
        assert!(check(&h).is_ok());
        // Never seen: fine (and pruned).
        let h = vec![
            put(0, 1, 0, 10),
            lost(1, Call::Put(2), 20),
            read(2, Some(1), 30, 40),
        ];
        let r = check(&h).unwrap();
        assert_eq!(r.pruned, 1);
        // But it cannot take effect before it was invoked...
        let h = vec![read(2, Some(2), 0, 10), lost(1, Call::Put(2), 20)];
        assert!(is_violation(check(&h)));
        // ...nor be undone once seen.
        let h = vec![
            put(0, 1, 0, 10),
            lost(1, Call::Put(2), 20),
            read(2, Some(2), 30, 40),
            read(2, Some(1), 50, 60),
        ];
        assert!(is_violation(check(&h)));
        // An indeterminate CAS and an indeterminate delete.
        let h = vec![
            put(0, 1, 0, 10),
            lost(
                1,
                Call::Cas {
                    expected: 1,
                    new: 3,
                },
                20,
            ),
            lost(2, Call::Delete, 25),
            read(2, Some(3), 30, 40),
            read(2, None, 50, 60),
        ];
        assert!(check(&h).is_ok());
        let h = vec![
            put(0, 1, 0, 10),
            lost(
                1,
                Call::Cas {
                    expected: 1,
                    new: 3,
                },
                20,
            ),
            read(2, None, 30, 40),
        ];
        assert!(is_violation(check(&h)));
    }

    #[test]
    fn a_definitely_failed_write_must_not_show_up() {
        let h = vec![
            put(0, 1, 0, 10),
            op(1, Call::Put(2), Outcome::Failed, 20, 30),
            read(2, Some(2), 40, 50),
        ];
        let r = check(&h);
        assert!(
            matches!(&r, Err(CheckError::Violation { explanation, .. }) if explanation.contains("took no effect")),
            "{r:?}"
        );
        let h = vec![read(2, Some(7), 40, 50)];
        assert!(is_violation(check(&h)));
    }

    #[test]
    fn keys_are_independent() {
        let mut h = vec![put(0, 1, 0, 10), read(1, Some(1), 20, 30)];
        let mut other = vec![put(0, 2, 5, 15), read(1, None, 1, 2)];
        for o in &mut other {
            o.key = "other".into();
        }
        h.extend(other);
        let r = check(&h).unwrap();
        assert_eq!(r.keys, 2);
        // A stale read on one key is found among many good operations.
        h.push(Op {
            key: "other".into(),
            ..read(3, None, 40, 50)
        });
        assert!(is_violation(check(&h)));
    }

    /// Random concurrent histories generated from a real register (each
    /// operation takes effect at a random instant inside its interval) are
    /// accepted; corrupting one read's value is (almost always) rejected.
    #[test]
    fn random_linearizable_histories_pass_and_corrupted_ones_fail() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut caught = 0;
        for round in 0..60 {
            let clients = 8;
            let mut h = Vec::new();
            let mut state: State = None;
            let mut next_value = 1;
            // (effect time, client, call, invoke, complete, lost)
            let mut plan = Vec::new();
            let mut t = vec![0u64; clients];
            for _ in 0..120 {
                let c = rng.random_range(0..clients);
                let invoke = t[c] + rng.random_range(0..20);
                let effect = invoke + rng.random_range(1..50);
                let complete = effect + rng.random_range(1..50);
                t[c] = complete;
                let call = match rng.random_range(0..10) {
                    0..4 => Call::Read,
                    4..7 => {
                        next_value += 1;
                        Call::Put(next_value)
                    }
                    7..9 => {
                        next_value += 1;
                        Call::Cas {
                            expected: rng.random_range(1..next_value.max(2)),
                            new: next_value,
                        }
                    }
                    _ => Call::Delete,
                };
                let lost = rng.random_bool(0.1);
                plan.push((effect, c, call, invoke, complete, lost));
            }
            plan.sort_by_key(|p| p.0);
            for (_, c, call, invoke, complete, lost) in plan {
                // A lost op takes effect with probability 1/2.
                let applies = !lost || rng.random_bool(0.5);
                let before = state;
                let outcome = match call {
                    Call::Read => Outcome::Ok { seen: Some(before) },
                    Call::Put(v) => {
                        if applies {
                            state = Some(v);
                        }
                        Outcome::Ok { seen: Some(before) }
                    }
                    Call::Delete => {
                        if applies {
                            state = None;
                        }
                        Outcome::Ok { seen: Some(before) }
                    }
                    Call::Cas { expected, new } => {
                        if before == Some(expected) {
                            if applies {
                                state = Some(new);
                            }
                            Outcome::Ok { seen: Some(before) }
                        } else {
                            Outcome::CasFailed { seen: Some(before) }
                        }
                    }
                };
                let outcome = if lost {
                    Outcome::Indeterminate
                } else {
                    outcome
                };
                h.push(op(c, call, outcome, invoke, complete));
            }
            let r = check(&h);
            assert!(r.is_ok(), "round {round}: {}", r.unwrap_err());
            // Corrupt one completed read: claim it saw a value written long
            // after it completed (or a different, older value).
            let reads: Vec<usize> = (0..h.len())
                .filter(|&i| h[i].call == Call::Read && matches!(h[i].outcome, Outcome::Ok { .. }))
                .collect();
            if reads.is_empty() {
                continue;
            }
            let i = reads[rng.random_range(0..reads.len())];
            let later = h.iter().find_map(|o| match (o.call, o.outcome) {
                (Call::Put(v), Outcome::Ok { .. }) if o.invoke > h[i].complete + 10 => Some(v),
                _ => None,
            });
            if let Some(v) = later {
                h[i].outcome = Outcome::Ok {
                    seen: Some(Some(v)),
                };
                assert!(
                    is_violation(check(&h)),
                    "round {round}: corrupted read accepted"
                );
                caught += 1;
            }
        }
        assert!(caught > 20, "only {caught} corruptions tried");
    }

    #[test]
    fn a_larger_concurrent_history_is_checked_quickly() {
        // 10 clients, 3000 operations on one key, 5% indeterminate.
        let mut rng = StdRng::seed_from_u64(11);
        let mut h = Vec::new();
        let mut state: State = None;
        let mut t = 0u64;
        for n in 0..3000u64 {
            t += rng.random_range(1..5);
            let invoke = t.saturating_sub(rng.random_range(0..40));
            let complete = t + rng.random_range(0..40);
            let c = (n % 10) as usize;
            let before = state;
            let (call, outcome) = match rng.random_range(0..3) {
                0 => (Call::Read, Outcome::Ok { seen: Some(before) }),
                _ => {
                    state = Some(n + 1);
                    (Call::Put(n + 1), Outcome::Ok { seen: Some(before) })
                }
            };
            let outcome = if rng.random_bool(0.05) {
                Outcome::Indeterminate
            } else {
                outcome
            };
            h.push(op(c, call, outcome, invoke, complete));
        }
        let start = std::time::Instant::now();
        let r = check(&h).unwrap();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{r:?}"
        );
    }
}
