//! Profiles, settings and what is known of each server (its capabilities, a chunk size
//! learned from a 413). Secret values are sealed before they reach a row.

use super::*;

impl Store {
    pub(super) fn endpoint_id(conn: &Connection, url: &str) -> Result<i64> {
        conn.execute(
            "INSERT INTO endpoints (url) VALUES (?1) ON CONFLICT(url) DO NOTHING",
            [url],
        )?;
        Ok(
            conn.query_row("SELECT id FROM endpoints WHERE url = ?1", [url], |r| {
                r.get(0)
            })?,
        )
    }

    /// Remembers what OPTIONS said about an endpoint.
    pub fn save_caps(&self, url: &str, caps: &ServerCaps) -> Result<()> {
        let conn = self.conn();
        let id = Self::endpoint_id(&conn, url)?;
        conn.execute(
            "UPDATE endpoints SET caps = ?1, checked_at = ?2 WHERE id = ?3",
            params![
                serde_json::to_string(caps).unwrap_or_default(),
                now_secs(),
                id
            ],
        )?;
        Ok(())
    }

    /// What OPTIONS said last time, if ever.
    pub fn caps(&self, url: &str) -> Result<Option<ServerCaps>> {
        let caps: Option<Option<String>> = self
            .conn()
            .query_row("SELECT caps FROM endpoints WHERE url = ?1", [url], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(caps.flatten().and_then(|c| serde_json::from_str(&c).ok()))
    }

    /// The largest PATCH body this endpoint (or a proxy in front of it) accepted after
    /// refusing a larger one with 413, if it ever did.
    pub fn learned_chunk(&self, url: &str) -> Result<Option<u64>> {
        if let Some(known) = self.memo().learned_chunks.get(url) {
            return Ok(*known);
        }
        let v: Option<Option<i64>> = self
            .conn()
            .prepare_cached("SELECT max_chunk FROM endpoints WHERE url = ?1")?
            .query_row([url], |r| r.get(0))
            .optional()?;
        let learned = v.flatten().map(|c| c as u64);
        self.memo().learned_chunks.insert(url.to_string(), learned);
        Ok(learned)
    }

    /// Remembers a chunk size a 413 taught, for every later upload to the endpoint (and
    /// after a relaunch). It only ever shrinks.
    pub fn learn_chunk(&self, url: &str, chunk: u64) -> Result<()> {
        let conn = self.conn();
        let id = Self::endpoint_id(&conn, url)?;
        conn.prepare_cached(
            "UPDATE endpoints SET max_chunk = MIN(COALESCE(max_chunk, ?2), ?2) WHERE id = ?1",
        )?
        .execute(params![id, chunk as i64])?;
        self.memo().learned_chunks.remove(url);
        Ok(())
    }

    /// A setting's JSON value.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Stores a setting's JSON value.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// Saves a profile (by name) with its secret header values in `secrets` and references
    /// in the journal; returns its id.
    pub fn save_profile_sealed(
        &self,
        secrets: &crate::profiles::secrets::Secrets,
        profile: &Profile,
    ) -> Result<ProfileId> {
        let mut sealed = profile.clone().with_userinfo_as_header()?;
        let previous = self.profile_by_name(&profile.name)?;
        sealed.bind(previous.as_ref());
        let is_secret = |name: &str| sealed.is_secret(name);
        let headers = secrets.seal(
            &format!("profile:{}", profile.name),
            &sealed.headers,
            &is_secret,
        )?;
        sealed.headers = headers;
        let id = self.save_profile(&sealed)?;
        // Secrets the profile no longer refers to (a header removed, a value under a new
        // key) leave the keyring too.
        if let Some(previous) = previous {
            let kept: std::collections::HashSet<&String> = sealed.headers.values().collect();
            let dropped: BTreeMap<String, String> = previous
                .headers
                .iter()
                .filter(|(_, v)| !kept.contains(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Err(e) = secrets.forget(&dropped) {
                tracing::warn!(error = %e, "could not remove a profile's old secrets");
            }
        }
        Ok(id)
    }

    /// Renames a profile; its uploads follow it (they refer to its id).
    pub fn rename_profile(&self, from: &str, to: &str) -> Result<()> {
        if from == to {
            return Ok(());
        }
        if self.profile_by_name(to)?.is_some() {
            return Err(crate::error::Error::Protocol(format!(
                "a profile named {to:?} exists already"
            )));
        }
        let renamed = self.exec(
            "UPDATE profiles SET name = ?2, updated_at = ?3 WHERE name = ?1",
            params![from, to, now_millis()],
        );
        self.forget_profiles();
        renamed
    }

    /// Creates or replaces the profile named `p.name` as given; returns its id. A new profile
    /// never gets the id of a removed one: uploads, watches and destinations refer to ids.
    pub fn save_profile(&self, p: &Profile) -> Result<ProfileId> {
        let body = serde_json::to_string(p).expect("profile serialises");
        let saved = (|| {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id: ProfileId = tx
                .prepare_cached(
                    "INSERT INTO profiles (id, name, body, updated_at)
                     VALUES ((SELECT last + 1 FROM profile_ids), ?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET body = excluded.body,
                     updated_at = excluded.updated_at
                     RETURNING id",
                )?
                .query_row(params![p.name, body, now_millis()], |r| r.get(0))?;
            tx.execute("UPDATE profile_ids SET last = MAX(last, ?1)", [id])?;
            tx.commit()?;
            Ok(id)
        })();
        self.forget_profiles();
        saved
    }

    pub(super) fn profile_where(
        &self,
        clause: &str,
        key: &dyn rusqlite::ToSql,
    ) -> Result<Option<Profile>> {
        let row = self
            .conn()
            .prepare_cached(&format!(
                "SELECT id, name, body FROM profiles WHERE {clause} = ?1"
            ))?
            .query_row([key], |r| {
                Ok((
                    r.get::<_, ProfileId>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()?;
        Ok(row.map(|(id, name, body)| {
            let mut p: Profile = serde_json::from_str(&body).unwrap_or_default();
            p.id = id;
            p.name = name;
            p
        }))
    }

    /// A profile by id (`None` when it was removed).
    pub fn profile(&self, id: ProfileId) -> Result<Option<Profile>> {
        let generation = {
            let memo = self.memo();
            if let Some(known) = memo.profiles.get(&id) {
                return Ok(known.clone());
            }
            memo.profiles_generation
        };
        let p = self.profile_where("id", &id)?;
        let mut memo = self.memo();
        if memo.profiles_generation == generation {
            memo.profiles.insert(id, p.clone());
        }
        Ok(p)
    }

    /// Reads profiles from the journal again: another process saved or removed one.
    pub fn forget_profiles(&self) {
        let mut memo = self.memo();
        memo.profiles.clear();
        memo.profiles_generation += 1;
    }

    pub fn profile_by_name(&self, name: &str) -> Result<Option<Profile>> {
        self.profile_where("name", &name)
    }

    /// Every profile, by name.
    pub fn profiles(&self) -> Result<Vec<Profile>> {
        let ids: Vec<ProfileId> = self
            .conn()
            .prepare_cached("SELECT id FROM profiles ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.profile(id)?);
        }
        Ok(out)
    }

    /// When each profile was last saved (milliseconds), so a running engine notices edits
    /// made by another process (the CLI beside the app).
    pub fn profile_versions(&self) -> Result<HashMap<ProfileId, i64>> {
        let rows = self
            .conn()
            .prepare_cached("SELECT id, updated_at FROM profiles")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Removes a profile; its uploads keep going with no credentials of their own.
    pub fn delete_profile(&self, name: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM profiles WHERE name = ?1", [name]);
        self.forget_profiles();
        let n = n?;
        Ok(n > 0)
    }
}
