//! [`align`]: restricting a dataset to the intersection, in the intersection's order.

use std::collections::HashMap;

use fedra_data::Dataset;

use crate::{Intersection, PsiError};

/// A new dataset holding exactly the rows of `dataset` whose ids are in
/// `intersection`, in the intersection's (canonical, agreed) order, so that both
/// parties of a vertical job end up with the same row order.
///
/// Fails if the intersection's ids were not revealed to this party (the follower in
/// `LeaderOnly` mode), if an intersection id is not in the dataset, or if an
/// intersection id occurs on several rows of the dataset (ambiguous).
pub fn align(dataset: &Dataset, intersection: &Intersection) -> Result<Dataset, PsiError> {
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
            .and_modify(|r| *r = None)
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
    }
}
