//! [`align`] and [`align_with`]: restricting a dataset to the intersection, in the
//! intersection's order.
//!
//! ## Duplicate ids
//!
//! PSI works on *distinct* ids: both protocols collapse repeated ids before the
//! first message, so an id on several rows of a party's file enters the protocol
//! once and appears at most once in the [`Intersection`]. Alignment then has to map
//! each intersection id back to one row. By default ([`align`], i.e.
//! [`Duplicates::Error`]) an id that occurs on several rows is refused, because
//! picking one of the rows silently would pair the peer's row with an arbitrary one
//! of ours. [`Duplicates::KeepFirst`] makes the choice explicit: the first row (in
//! file order) of each such id is kept and the others are dropped; use it when the
//! repeated rows are known to be copies (e.g. FATE's `breast_hetero_guest_*_id`
//! example files, where each `id` repeats with identical features).

use std::collections::HashMap;

use fedra_data::Dataset;

use crate::{Intersection, PsiError};

/// What [`align_with`] does with an intersection id that occurs on several rows of
/// the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Duplicates {
    /// Fail with [`PsiError::Align`] naming the id (the behaviour of [`align`]).
    #[default]
    Error,
    /// Keep the first row (in dataset order) holding the id; drop its other rows.
    KeepFirst,
}

/// A new dataset holding exactly the rows of `dataset` whose ids are in
/// `intersection`, in the intersection's (canonical, agreed) order, so that both
/// parties of a vertical job end up with the same row order.
///
/// Fails if the intersection's ids were not revealed to this party (the follower in
/// `LeaderOnly` mode), if an intersection id is not in the dataset, or if an
/// intersection id occurs on several rows of the dataset (ambiguous; see
/// [`align_with`] with [`Duplicates::KeepFirst`] to keep the first such row).
pub fn align(dataset: &Dataset, intersection: &Intersection) -> Result<Dataset, PsiError> {
    align_with(dataset, intersection, Duplicates::Error)
}

/// Like [`align`], with an explicit policy for intersection ids that occur on
/// several rows of `dataset` (see the [module docs](self)). Dataset ids outside the
/// intersection may repeat freely under either policy: their rows are dropped.
pub fn align_with(
    dataset: &Dataset,
    intersection: &Intersection,
    duplicates: Duplicates,
) -> Result<Dataset, PsiError> {
    if !intersection.ids_revealed {
        return Err(PsiError::Align {
            detail: format!(
                "this party learned only the intersection size ({}), not its ids",
                intersection.size
            ),
        });
    }
    let mut row_of: HashMap<&str, Option<usize>> = HashMap::with_capacity(dataset.n_rows());
    for (i, id) in dataset.ids().iter().enumerate() {
        row_of
            .entry(id.as_str())
            .and_modify(|r| {
                if duplicates == Duplicates::Error {
                    *r = None;
                }
            })
            .or_insert(Some(i));
    }
    let mut rows = Vec::with_capacity(intersection.ids.len());
    for id in &intersection.ids {
        match row_of.get(id.as_str()) {
            Some(Some(r)) => rows.push(*r),
            Some(None) => {
                return Err(PsiError::Align {
                    detail: format!("id {id:?} occurs on several rows of the dataset"),
                });
            }
            None => {
                return Err(PsiError::Align {
                    detail: format!("id {id:?} of the intersection is not in the dataset"),
                });
            }
        }
    }
    dataset.select_rows(&rows).map_err(|e| PsiError::Align {
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(ids: &[&str]) -> Dataset {
        let n = ids.len();
        Dataset::new(
            "id",
            ids.iter().map(|s| s.to_string()).collect(),
            None,
            vec!["x".into()],
            (0..n).map(|i| i as f64).collect(),
        )
        .unwrap()
    }

    fn inter(ids: &[&str]) -> Intersection {
        Intersection {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            size: ids.len(),
            ids_revealed: true,
        }
    }

    #[test]
    fn selects_rows_in_intersection_order() {
        let d = align(&ds(&["a", "b", "c", "d"]), &inter(&["d", "b"])).unwrap();
        assert_eq!(d.ids(), &["d".to_string(), "b".to_string()]);
        assert_eq!(d.features(), &[3.0, 1.0]);
    }

    #[test]
    fn rejects_missing_duplicate_and_hidden() {
        let e = align(&ds(&["a"]), &inter(&["z"])).unwrap_err();
        assert_eq!(e.code(), "psi.align");
        assert!(e.to_string().contains("\"z\""));
        assert!(align(&ds(&["a", "a"]), &inter(&["a"])).is_err());
        let hidden = Intersection {
            ids: vec![],
            size: 3,
            ids_revealed: false,
        };
        assert!(align(&ds(&["a"]), &hidden).is_err());
        assert!(align_with(&ds(&["a"]), &hidden, Duplicates::KeepFirst).is_err());
        let e = align_with(&ds(&["a"]), &inter(&["z"]), Duplicates::KeepFirst).unwrap_err();
        assert!(e.to_string().contains("\"z\""), "{e}");
    }

    #[test]
    fn keep_first_takes_the_first_row_of_a_repeated_id() {
        let d = ds(&["a", "b", "a", "c", "b", "a"]);
        let e = align(&d, &inter(&["b"])).unwrap_err();
        assert!(e.to_string().contains("several rows"), "{e}");
        assert_eq!(
            align_with(&d, &inter(&["b"]), Duplicates::Error)
                .unwrap_err()
                .code(),
            "psi.align"
        );
        let k = align_with(&d, &inter(&["a", "c", "b"]), Duplicates::KeepFirst).unwrap();
        assert_eq!(k.ids(), &["a".to_string(), "c".into(), "b".into()]);
        assert_eq!(k.features(), &[0.0, 3.0, 1.0]);
        // Repeats outside the intersection do not matter under either policy.
        let only_c = align(&d, &inter(&["c"])).unwrap();
        assert_eq!(only_c.features(), &[3.0]);
        assert_eq!(Duplicates::default(), Duplicates::Error);
    }
}
