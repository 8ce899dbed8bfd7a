//! [`U64Set`]: a set of 64-bit ids and hashes, without std's `HashSet` (hashbrown and
//! SipHash cost kilobytes of wasm, issue 16) and without sorting (so does a sort).

/// A set of `u64`: open addressing over a power-of-two table, at most half full, with
/// linear probing; a multiply (Fibonacci hashing) spreads the values over the table,
/// so sequential ids and FNV-1a hashes both index it well. `0` marks an empty slot
/// (the value 0 itself is kept aside). Lookups and inserts are O(1) on average; it
/// only grows.
#[derive(Debug, Default, Clone)]
pub struct U64Set {
    slots: Vec<u64>,
    len: usize,
    zero: bool,
}

impl U64Set {
    fn slot(v: u64) -> usize {
        (v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize
    }

    /// How many values the set holds.
    pub fn len(&self) -> usize {
        self.len + usize::from(self.zero)
    }

    /// `true` when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.zero
    }

    /// `true` when `v` is in the set.
    pub fn contains(&self, v: u64) -> bool {
        if v == 0 {
            return self.zero;
        }
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = Self::slot(v);
        loop {
            match self.slots.get(i & mask) {
                Some(&s) if s == v => return true,
                Some(&0) | None => return false,
                Some(_) => i = i.wrapping_add(1),
            }
        }
    }

    /// Adds `v`; `false` when it was there already.
    pub fn insert(&mut self, v: u64) -> bool {
        if v == 0 {
            return !std::mem::replace(&mut self.zero, true);
        }
        if 2 * (self.len + 1) > self.slots.len() {
            let size = (2 * self.slots.len()).max(16);
            let old = std::mem::replace(&mut self.slots, vec![0; size]);
            self.len = 0;
            for v in old.into_iter().filter(|v| *v != 0) {
                self.insert(v);
            }
        }
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = Self::slot(v);
        loop {
            match self.slots.get_mut(i & mask) {
                Some(s) if *s == v => return false,
                Some(s) if *s == 0 => {
                    *s = v;
                    self.len += 1;
                    return true;
                }
                Some(_) => i = i.wrapping_add(1),
                None => return false,
            }
        }
    }
}

impl FromIterator<u64> for U64Set {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut set = U64Set::default();
        for v in iter {
            set.insert(v);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::U64Set;

    #[test]
    fn holds_what_was_inserted_and_nothing_else() {
        let mut set = U64Set::default();
        assert!(set.is_empty() && !set.contains(0) && !set.contains(7));
        assert!(set.insert(0) && !set.insert(0));
        assert!(!set.is_empty() && set.contains(0) && !set.contains(7));
        // Enough to grow the table several times: sequential ids, and values whose low
        // bits all collide.
        let inserted: Vec<u64> = (1..=500u64).chain((1..=500u64).map(|i| i << 40)).collect();
        for v in &inserted {
            assert!(set.insert(*v), "{v} is new");
            assert!(!set.insert(*v), "{v} is there");
        }
        assert_eq!(set.len(), inserted.len() + 1);
        assert!(inserted.iter().all(|v| set.contains(*v)));
        assert!((501..=1000u64).all(|i| !set.contains(i) && !set.contains((i << 40) + 1)));
        let collected: U64Set = inserted.iter().copied().collect();
        assert!(!collected.contains(0) && collected.len() == inserted.len());
    }
}
