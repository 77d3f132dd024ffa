//! Gives the memory the compiler used back to the system.
//!
//! Compiling a large plugin allocates hundreds of MiB across the compiler's threads; glibc's
//! malloc keeps what they free in its per-thread arenas, so an idle server that compiled the
//! ONNX plugin held ~370 MiB of anonymous memory it no longer used. `malloc_trim(0)` hands the
//! free pages of every arena back (measured: 375 MiB → 59 MiB anonymous after a first start).
//! A built-in plugin's deflated wasm is read from the binary's own pages; `release_embedded`
//! drops them.

/// Returns the allocator's free pages to the kernel; called after each compile.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim has no preconditions: it takes glibc's own arena locks and only
    // releases pages that hold no allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's, macOS's) return freed memory without being asked.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// glibc arenas the process may use, unless `MALLOC_ARENA_MAX` says otherwise. glibc's default
/// is eight per core, and each thread that allocates under contention gets one of its own: the
/// compiler's worker threads left ~27 MiB of live allocations scattered over their arenas after
/// the ONNX plugin's compile, pages `malloc_trim` cannot return (87 MiB idle after the compile
/// against 70 MiB with one arena). See README, "Footprint", for how the number was chosen.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: i32 = 1;

/// Caps glibc's arenas at [`MALLOC_ARENAS`], as `MALLOC_ARENA_MAX` would; a `MALLOC_ARENA_MAX`
/// in the environment wins (glibc reads it itself). Call first thing in `main`, before any
/// thread starts: an arena made before the call stays.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets a glibc tunable; M_ARENA_MAX bounds the arenas made from now on.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_malloc_arenas() {}

/// Unmaps the resident pages of a built-in plugin's deflated wasm once it is inflated. The
/// bytes are part of the binary's read-only image, so inflating them brought 4 MiB (the ONNX
/// plugin) of the file into the process's resident set, where they would stay for nothing: the
/// compiled code is what runs, and a recompile reads them back from the file.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn release_embedded(wasm: &'static [u8]) {
    let page = rustix::param::page_size();
    let start = wasm.as_ptr() as usize;
    let first = start.next_multiple_of(page);
    let end = (start + wasm.len()) / page * page;
    if end <= first {
        return;
    }
    // SAFETY: the range is whole pages inside `include_bytes!` data, which lives in the
    // binary's read-only segment: a private file mapping that can never have been written.
    // MADV_DONTNEED drops such pages from the resident set and the next read faults them back
    // in from the file unchanged, so no byte the program can see changes.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTNEED);
    }
}

#[cfg(not(target_os = "linux"))]
pub fn release_embedded(_: &'static [u8]) {}

/// Asks the kernel to reclaim the pages of this process's read-only file mappings: the binary's
/// code and constants, the shared libraries', and each compiled plugin's code mapped from the
/// compile cache. An idle server's resident set is nearly all such pages (42.6 of 46 MiB for
/// `models serve` of an ONNX model; README, "Footprint"), which it keeps until the system runs
/// short of memory. A reclaimed page is read back from its file at its next touch, so the first
/// request after an idle period pays for the page faults (README, "Footprint", measures it).
/// Returns the bytes of the mappings advised.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn release_file_pages() -> usize {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let mut advised = 0;
    for line in maps.lines() {
        // start-end perms offset device inode [path]
        let mut fields = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(inode)) = (fields.next(), fields.next(), fields.nth(2))
        else {
            continue;
        };
        let path = fields.next().unwrap_or("");
        if inode == "0" || perms.as_bytes().get(1) != Some(&b'-') || path.starts_with('[') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: MADV_PAGEOUT changes no byte the program can see: it only reclaims pages,
        // and a reclaimed page is read back from its file (or from swap, for a private copy)
        // at its next touch. A range that was unmapped or mapped again since `maps` was read
        // is at worst reclaimed in the same way; an error (a kernel without MADV_PAGEOUT, a
        // range no longer mapped) leaves everything as it was.
        let done = unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                end.saturating_sub(start),
                libc::MADV_PAGEOUT,
            )
        };
        if done == 0 {
            advised += end.saturating_sub(start);
        }
    }
    advised
}

#[cfg(not(target_os = "linux"))]
pub fn release_file_pages() -> usize {
    0
}

/// This process's resident memory (VmRSS) in bytes, `None` where `/proc` does not tell.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib << 10)
}
