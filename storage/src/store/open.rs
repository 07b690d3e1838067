//! Opening the store: the database and its keyspaces, the format check, the id counter, the
//! change log's ends, and the indexes reconciled with the configuration (new or changed ones
//! rebuilt into a new keyspace generation, unused ones dropped).

use super::*;

/// The journal size after which fjall flushes memtables, so that recovery after a crash
/// replays at most this much (fjall's default is 512 MiB).
const MAX_JOURNAL_BYTES: u64 = 128 * 1024 * 1024;

const META_FORMAT: &[u8] = b"format";
/// `index:<oid>` → the index kinds (one byte, `IndexFlags`) and the generation of its
/// keyspace (u32, big-endian).
const META_INDEX_PREFIX: &str = "index:";

/// Keys inside a data block are prefix-compressed with a full key every `RESTART_INTERVAL`
/// keys; a lookup binary-searches the full keys, then decodes the keys after one in turn.
/// fjall's default (16) made a point read or an index prefix scan decode about twice as many
/// keys as 4 does, which costs about 7% more space here (bench/profile.sh: 10,000 fewer
/// instructions per search by mail, of about 110,000).
const RESTART_INTERVAL: u8 = 4;

/// Index and filter blocks are kept in memory at every level (fjall pins them in the first
/// levels only, but a bulk-loaded store has its tables in the last one): otherwise every read
/// takes its table's index block from the block cache and parses it again.
fn data_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .data_block_restart_interval_policy(RestartIntervalPolicy::all(RESTART_INTERVAL))
        .index_block_pinning_policy(fjall::config::PinningPolicy::all(true))
        .filter_block_pinning_policy(fjall::config::PinningPolicy::all(true))
}

/// Index keyspaces are only ever scanned by prefix, never probed by whole key: a bloom filter
/// would cost memory and build time for nothing.
fn scan_only_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .filter_policy(FilterPolicy::disabled())
        .data_block_restart_interval_policy(RestartIntervalPolicy::all(RESTART_INTERVAL))
        .index_block_pinning_policy(fjall::config::PinningPolicy::all(true))
        .filter_block_pinning_policy(fjall::config::PinningPolicy::all(true))
}

impl Store {
    /// Opens (or creates) the store at `config.path`. Rebuilds the indexes whose configuration
    /// changed since the last open and drops those no longer configured.
    pub fn open(config: &StoreConfig, schema: Arc<Schema>) -> Result<Store> {
        std::fs::create_dir_all(&config.path).map_err(|source| StoreError::Io {
            context: "create entry store directory",
            source,
        })?;
        let db = SingleWriterTxDatabase::builder(&config.path)
            .max_journaling_size(MAX_JOURNAL_BYTES)
            .open()
            .context("open entry store")?;
        let meta = db
            .keyspace("meta", data_options)
            .context("open meta keyspace")?;
        let id2entry = db
            .keyspace("id2entry", data_options)
            .context("open id2entry keyspace")?;
        let dn2id = db
            .keyspace("dn2id", data_options)
            .context("open dn2id keyspace")?;
        let children = db
            .keyspace("children", scan_only_options)
            .context("open children keyspace")?;
        let changes = db
            .keyspace("changes", data_options)
            .context("open changes keyspace")?;

        check_format(&meta, &id2entry)?;
        let next_id = match id2entry.last_key_value() {
            Some(guard) => keys::id_from_value(&guard.key().context("read last entry id")?)? + 1,
            None => 1,
        };

        let integrity = config
            .integrity
            .iter()
            .map(|name| {
                schema
                    .attr_id(name)
                    .ok_or_else(|| StoreError::UnknownIntegrityAttribute { attr: name.clone() })
            })
            .collect::<Result<Vec<_>>>()?;
        let links = LinkAttrs::new(&schema, integrity);
        let unique = config
            .unique
            .iter()
            .map(|spec| crate::unique::UniqueSpace::resolve(&schema, spec))
            .collect::<Result<Vec<_>>>()?;
        let wanted = resolve_indexes(config, &schema, &links, &unique)?;
        let stored = stored_indexes(&meta)?;
        let mut list = Vec::new();
        // (slot, generation) of each index to build; the keyspaces they replace are deleted
        // once the meta keyspace names the new ones.
        let mut rebuild = Vec::new();
        for (oid, (attr, flags)) in &wanted {
            let current = stored.get(oid).copied();
            let (generation, build) = match current {
                Some((f, g))
                    if f == *flags && db.keyspace_exists(&index::keyspace_name(oid, g)) =>
                {
                    (g, false)
                }
                Some((_, g)) => (unused_generation(&db, oid, g.wrapping_add(1)), true),
                None => (unused_generation(&db, oid, 0), true),
            };
            let name = index::keyspace_name(oid, generation);
            if name.len() > 255 {
                return Err(StoreError::UnknownIndexAttribute { attr: oid.clone() });
            }
            if build {
                rebuild.push((list.len(), generation));
            }
            let keyspace = db
                .keyspace(&name, scan_only_options)
                .context("open index keyspace")?;
            let type_name = schema
                .attr(*attr)
                .map(|a| a.name().to_string())
                .unwrap_or_else(|| oid.clone());
            list.push(AttrIndex {
                attr: *attr,
                oid: oid.clone(),
                name: type_name,
                flags: *flags,
                keyspace,
            });
        }
        for oid in stored.keys().filter(|oid| !wanted.contains_key(*oid)) {
            tracing::info!(attr = %oid, "dropping index no longer configured");
            meta.remove(meta_index_key(oid))
                .context("drop index configuration")?;
        }

        let object_class = schema.attr_id("objectClass");
        let meta_for_log = meta.clone();
        let schema_for_log = schema.clone();
        let inner = Inner {
            codec: EntryCodec::new(&schema),
            path: config.path.clone(),
            db,
            meta,
            id2entry,
            dn2id,
            children,
            indexes: Indexes::new(&schema, list),
            schema,
            next_id: AtomicU64::new(next_id),
            durability: config.durability,
            write_lock: Mutex::new(WriterState::open(&meta_for_log, config.change_log)?),
            changes,
            entry_csn: schema_for_log.attr_id("entryCSN"),
            entry_uuid: schema_for_log.attr_id("entryUUID"),
            keep_csn: config.keep_csn,
            listeners: RwLock::new(Vec::new()),
            bases: crate::basecache::BaseCache::default(),
            cache: crate::cache::ReadCache::new(config.cache_size),
            group: GroupCommit::new(&config.path),
            object_class,
            links,
            unique,
        };
        let store = Store {
            inner: Arc::new(inner),
            buffered: false,
        };
        if !rebuild.is_empty() {
            store.rebuild_indexes(&rebuild)?;
        }
        store.drop_unused_index_keyspaces()?;
        store.start_log_if_missing()?;
        Ok(store)
    }

    /// Fills the (new, empty) keyspaces of the indexes in `slots` from the entries, then
    /// records each index's kinds and generation in the meta keyspace. Until then the meta
    /// keyspace names the previous generation, so an interrupted rebuild starts over at the
    /// next open.
    fn rebuild_indexes(&self, slots: &[(usize, u32)]) -> Result<()> {
        let inner = &*self.inner;
        let started = Instant::now();
        for &(slot, _) in slots {
            if let Some(ix) = inner.indexes.list.get(slot) {
                tracing::info!(attr = %ix.name, oid = %ix.oid, kinds = %ix.flags.describe(), "building index");
            }
        }
        inner.cache.invalidate();
        let snapshot = inner.db.read_tx();
        let mut buffers: Vec<KvBuffer> = slots.iter().map(|_| KvBuffer::default()).collect();
        let mut runs: Vec<u32> = slots.iter().map(|_| 0).collect();
        let mut builder = KeyBuilder::default();
        let mut entries = 0u64;
        for guard in snapshot.iter(&inner.id2entry) {
            let (k, v) = guard.into_inner().context("scan entries")?;
            let id = keys::id_from_value(&k)?;
            let entry = inner.codec.decode(id, &v)?;
            let id_key = keys::id_bytes(id);
            for ((buffer, runs), &(slot, _)) in buffers.iter_mut().zip(runs.iter_mut()).zip(slots) {
                builder.entry_keys(
                    &inner.schema,
                    &inner.indexes,
                    Some(slot),
                    &entry,
                    &mut |_, key| {
                        buffer.push_key_with_id(key, &id_key);
                    },
                );
                if buffer.bytes() > crate::bulk::RUN_BYTES {
                    if let Some(ix) = inner.indexes.list.get(slot) {
                        std::mem::take(buffer).ingest(&ix.keyspace)?;
                        *runs += 1;
                    }
                }
            }
            entries += 1;
        }
        for ((buffer, runs), &(slot, generation)) in buffers.into_iter().zip(runs).zip(slots) {
            let Some(ix) = inner.indexes.list.get(slot) else {
                continue;
            };
            buffer.ingest(&ix.keyspace)?;
            // Overlapping runs would slow every lookup until compaction catches up (see `bulk`).
            if runs > 0 {
                AsRef::<fjall::Keyspace>::as_ref(&ix.keyspace)
                    .major_compact()
                    .context("merge index runs")?;
            }
            let mut value = vec![ix.flags.0];
            value.extend_from_slice(&generation.to_be_bytes());
            inner
                .meta
                .insert(meta_index_key(&ix.oid), value)
                .context("record index configuration")?;
        }
        inner
            .db
            .persist(PersistMode::SyncAll)
            .context("record index configuration")?;
        inner.publish_cache();
        tracing::info!(
            entries,
            indexes = slots.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "indexes built"
        );
        Ok(())
    }

    /// Deletes index keyspaces the meta keyspace does not name: indexes no longer configured,
    /// generations replaced by a rebuild, and rebuilds interrupted by a crash.
    fn drop_unused_index_keyspaces(&self) -> Result<()> {
        let inner = &*self.inner;
        let in_use: Vec<String> = inner
            .indexes
            .list
            .iter()
            .map(|ix| {
                AsRef::<fjall::Keyspace>::as_ref(&ix.keyspace)
                    .name()
                    .to_string()
            })
            .collect();
        for name in inner.db.list_keyspace_names() {
            let name = name.to_string();
            if !name.starts_with(index::KEYSPACE_PREFIX) || in_use.contains(&name) {
                continue;
            }
            let keyspace = inner
                .db
                .keyspace(&name, scan_only_options)
                .context("open index keyspace")?;
            inner
                .db
                .inner()
                .delete_keyspace(keyspace.inner().clone())
                .context("delete index keyspace")?;
            tracing::info!(keyspace = %name, "deleted unused index keyspace");
        }
        Ok(())
    }
}

/// The first generation from `from` on whose keyspace does not exist: a keyspace left by an
/// interrupted rebuild is never reused (it is deleted once the new one is in place).
fn unused_generation(db: &SingleWriterTxDatabase, oid: &str, from: u32) -> u32 {
    let mut generation = from;
    while db.keyspace_exists(&index::keyspace_name(oid, generation)) {
        generation = generation.wrapping_add(1);
    }
    generation
}

fn meta_index_key(oid: &str) -> Vec<u8> {
    format!("{META_INDEX_PREFIX}{oid}").into_bytes()
}

fn check_format(meta: &SingleWriterTxKeyspace, id2entry: &SingleWriterTxKeyspace) -> Result<()> {
    match meta.get(META_FORMAT).context("read format version")? {
        Some(v) => {
            let bytes: [u8; 4] = v
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::corrupt("format version", keys::render(&v)))?;
            let found = u32::from_be_bytes(bytes);
            if found != FORMAT_VERSION {
                return Err(StoreError::UnsupportedFormat {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
        }
        None => {
            if id2entry.first_key_value().is_some() {
                return Err(StoreError::corrupt(
                    "meta keyspace",
                    "entries stored without a format version",
                ));
            }
            meta.insert(META_FORMAT, FORMAT_VERSION.to_be_bytes())
                .context("write format version")?;
        }
    }
    Ok(())
}

/// The configured indexes by OID; the same type configured twice (by name and by OID) gets the
/// union of the kinds.
fn resolve_indexes(
    config: &StoreConfig,
    schema: &Schema,
    links: &LinkAttrs,
    unique: &[crate::unique::UniqueSpace],
) -> Result<BTreeMap<String, (AttrId, IndexFlags)>> {
    let mut wanted: BTreeMap<String, (AttrId, IndexFlags)> = BTreeMap::new();
    // Links and unique values are found through equality indexes, configured or not.
    let uniq = unique.iter().flat_map(|u| u.attrs().iter());
    for &id in links.member.iter().chain(&links.integrity).chain(uniq) {
        if let Some(at) = schema.attr(id) {
            let slot = wanted.entry(at.oid.clone()).or_insert((id, IndexFlags(0)));
            slot.1 = IndexFlags(slot.1 .0 | IndexFlags::EQUALITY);
        }
    }
    for spec in &config.indexes {
        let unknown = || StoreError::UnknownIndexAttribute {
            attr: spec.attr.clone(),
        };
        let id = schema.attr_id(&spec.attr).ok_or_else(unknown)?;
        let oid = schema.attr(id).ok_or_else(unknown)?.oid.clone();
        let mut flags = 0;
        if spec.equality {
            flags |= IndexFlags::EQUALITY;
        }
        if spec.presence {
            flags |= IndexFlags::PRESENCE;
        }
        if spec.substring {
            flags |= IndexFlags::SUBSTRING;
        }
        if flags == 0 {
            continue;
        }
        let slot = wanted.entry(oid).or_insert((id, IndexFlags(0)));
        slot.1 = IndexFlags(slot.1 .0 | flags);
    }
    Ok(wanted)
}

fn stored_indexes(meta: &SingleWriterTxKeyspace) -> Result<BTreeMap<String, (IndexFlags, u32)>> {
    let mut stored = BTreeMap::new();
    for guard in meta.inner().prefix(META_INDEX_PREFIX) {
        let (k, v) = guard.into_inner().context("read index configuration")?;
        let corrupt = || StoreError::corrupt("index configuration", keys::render(&k));
        let oid = k
            .get(META_INDEX_PREFIX.len()..)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(corrupt)?;
        let (flags, generation) = v.split_first().ok_or_else(corrupt)?;
        let generation: [u8; 4] = generation.try_into().map_err(|_| corrupt())?;
        stored.insert(
            oid.to_string(),
            (IndexFlags(*flags), u32::from_be_bytes(generation)),
        );
    }
    Ok(stored)
}
