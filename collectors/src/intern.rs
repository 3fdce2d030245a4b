//! One shared allocation per distinct string.
//!
//! A discovered layout names thousands of elements with a few dozen distinct strings (`input`, `max`,
//! `accel_hwmon_temp_celsius`, its help text): interning holds each once instead of once per element.
//! Seeded with the previous layout's strings, a rediscovery shares them with the layout it replaces, so
//! the moment both are alive costs little more than one.

use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<str>>);

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared copy of `s`, made on first use.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(s);
        self.0.insert(Arc::clone(&shared));
        shared
    }

    /// Makes `s` the copy later [`get`](Self::get)s of equal strings return.
    pub fn seed(&mut self, s: &Arc<str>) {
        if !self.0.contains(&**s) {
            self.0.insert(Arc::clone(s));
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation_and_seeds_win() {
        let mut i = Interner::new();
        let a = i.get("input");
        let b = i.get(&String::from("input"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(i.len(), 1);
        let old: Arc<str> = Arc::from("accel_hwmon_temp_celsius");
        let mut i = Interner::new();
        i.seed(&old);
        assert!(Arc::ptr_eq(&i.get("accel_hwmon_temp_celsius"), &old), "a rediscovery reuses the old layout's copy");
        assert!(!Arc::ptr_eq(&i.get("max"), &a));
    }
}
