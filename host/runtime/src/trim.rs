//! Gives the memory the compiler used back to the system.
//!
//! Compiling a large plugin allocates hundreds of MiB across the compiler's threads; glibc's
//! malloc keeps what they free in its per-thread arenas, so an idle server that compiled the
//! ONNX plugin held ~370 MiB of anonymous memory it no longer used. `malloc_trim(0)` hands the
//! free pages of every arena back (measured: 375 MiB → 59 MiB anonymous after a first start).
//! A built-in plugin's deflated wasm is read from the binary's own pages; `release_embedded`
//! drops them. `wasmflow server`'s allocator is mimalloc ([`Allocator`]), set up here to give
//! its free memory back too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

use mimalloc::MiMalloc;

/// The binary's global allocator (`#[global_allocator]` in its `main`): glibc's malloc, or
/// mimalloc from [`use_mimalloc`] on, which `main` calls for `wasmflow server` alone.
///
/// Why mimalloc there: the OTLP ingest allocates and frees a few dozen blocks a span, many freed
/// by another thread than the one that made them (the SQLite writer frees what a request thread
/// decoded); glibc's malloc and free were 12% of the server's samples there, and with mimalloc
/// the server's CPU a span fell by a fifth to a half (README, "Where OTLP ingest's time went").
/// Why not everywhere: `models serve` with mimalloc either kept more memory idle (20.4 MiB after
/// `--idle-release` against glibc's 13) or, with freed memory returned at once
/// (`purge_delay` 0), spent 0.9 ms of CPU on a 1,000-row request against glibc's 0.5.
///
/// A block is freed (or grown) by the allocator that made it, whichever is in use then: a
/// pointer is mimalloc's if mimalloc's page map knows it, the lookup `mi_free` itself makes.
/// Until [`use_mimalloc`] no block can be mimalloc's, and none is looked up.
pub struct Allocator;

static MIMALLOC: AtomicBool = AtomicBool::new(false);

/// Makes every allocation from now on mimalloc's (see [`Allocator`]); blocks made before stay
/// glibc's until freed. Call before the threads that allocate most start.
pub fn use_mimalloc() {
    MIMALLOC.store(true, Ordering::Release);
    sqlite_on_mimalloc();
}

/// SQLite's own allocations (its page cache, statements, rows) go to mimalloc too, without its
/// memory statistics. SQLite allocates through the C library's malloc otherwise, and under OTLP
/// ingest that was a tenth of the writer thread's samples (glibc's `_int_malloc`,
/// `unlink_chunk`, `malloc_consolidate`, and SQLite's own mutex around each call, which it takes
/// to count memory: nothing here reads those counts, `sqlite3_memory_used` and the soft heap
/// limit). Measured on the bench's OTLP ingest, alternated with the library's defaults: the
/// writer's CPU a span 9.5-9.9 -> 8.4-9.2 us (README). Set in code, not with a build flag
/// (`SQLITE_DEFAULT_MEMSTATUS=0`), because the allocator can only be set in code and both belong
/// to `wasmflow server` alone, as mimalloc does. It must come before SQLite's first use (its
/// options are read once, at initialization); if SQLite is already in use it is left as it is.
#[allow(unsafe_code)]
fn sqlite_on_mimalloc() {
    use libsqlite3_sys as ffi;
    use std::os::raw::{c_int, c_void};
    // SAFETY (all six): SQLite calls them as `sqlite3_mem_methods` documents, with sizes it
    // checked to be positive and pointers from these same functions; mimalloc's blocks are
    // 16-byte aligned, more than the 8 SQLite needs.
    unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        unsafe { libmimalloc_sys::mi_malloc(n as usize) }
    }
    unsafe extern "C" fn free(p: *mut c_void) {
        unsafe { libmimalloc_sys::mi_free(p) }
    }
    unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        unsafe { libmimalloc_sys::mi_realloc(p, n as usize) }
    }
    unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        unsafe { libmimalloc_sys::mi_usable_size(p) as c_int }
    }
    unsafe extern "C" fn roundup(n: c_int) -> c_int {
        unsafe { libmimalloc_sys::mi_good_size(n as usize) as c_int }
    }
    unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        ffi::SQLITE_OK
    }
    unsafe extern "C" fn shutdown(_: *mut c_void) {}
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(malloc),
        xFree: Some(free),
        xRealloc: Some(realloc),
        xSize: Some(size),
        xRoundup: Some(roundup),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: sqlite3_config with these options takes an int and a pointer to methods it copies;
    // called before SQLite initializes (otherwise it refuses with SQLITE_MISUSE and changes
    // nothing, which the check below reports).
    let (memstatus, malloc) = unsafe {
        (
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int),
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_MALLOC,
                &methods as *const ffi::sqlite3_mem_methods,
            ),
        )
    };
    if memstatus != ffi::SQLITE_OK || malloc != ffi::SQLITE_OK {
        tracing::warn!("SQLite was in use before its allocator could be set: it keeps malloc's");
    }
}

#[allow(unsafe_code)]
fn is_mimallocs(ptr: *mut u8) -> bool {
    // SAFETY: mi_is_in_heap_region takes any pointer: it reads mimalloc's page map, which
    // covers every page mimalloc has made, and answers false for an address outside them.
    MIMALLOC.load(Ordering::Acquire)
        && unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast_const().cast()) }
}

// SAFETY: each call goes to one of two allocators that uphold GlobalAlloc's contract, and a
// block is always freed or reallocated by the allocator that made it (`is_mimallocs`, which
// cannot take a glibc block for mimalloc's: their pages are different mappings).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe {
            if MIMALLOC.load(Ordering::Relaxed) {
                MiMalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as alloc.
        unsafe {
            if MIMALLOC.load(Ordering::Relaxed) {
                MiMalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was made by this allocator with layout; is_mimallocs names which one.
        unsafe {
            if is_mimallocs(ptr) {
                MiMalloc.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as dealloc; the block stays with the allocator that made it.
        unsafe {
            if is_mimallocs(ptr) {
                MiMalloc.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

/// Turns mimalloc's `arena_eager_commit` off before its first arena is reserved (see
/// `CONFIGURE_MIMALLOC`): with it on, an arena's memory is committed all at once and an idle
/// `wasmflow server` held 12.2 MiB anonymous against glibc's 3.0 (4.0 with it off). An option
/// set in the environment (`MIMALLOC_ARENA_EAGER_COMMIT=...`) wins, as mimalloc documents.
#[allow(unsafe_code)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
extern "C" fn configure_mimalloc() {
    // `mi_option_e` in mimalloc v3's mimalloc.h (libmimalloc-sys names only some options).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    // SAFETY: mi_option_set_default only stores the option's value, unless the environment set
    // it (mimalloc reads that once, before or after this); mimalloc reads the value when it
    // reserves an arena. It allocates nothing.
    unsafe { libmimalloc_sys::mi_option_set_default(ARENA_EAGER_COMMIT, 0) };
}

/// Runs [`configure_mimalloc`] as the binary loads (an ELF constructor), before Rust's runtime
/// starts: the first arena is reserved with the options of that moment (set from `main`, the
/// option came too late: 12.2 MiB anonymous, as with mimalloc's defaults).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_MIMALLOC: extern "C" fn() = configure_mimalloc;

/// Returns the allocators' free pages to the kernel; called after each compile and when the
/// server is idle.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    if MIMALLOC.load(Ordering::Acquire) {
        // SAFETY: mi_collect has no preconditions: with `force` it frees this thread's empty
        // pages, takes over the pages of threads that have ended and purges every arena's
        // free memory, whichever thread freed it.
        unsafe {
            libmimalloc_sys::mi_collect(true);
        }
    }
    // glibc's: all of it without mimalloc, and other C libraries' with it (SQLite's allocations
    // are mimalloc's then, `sqlite_on_mimalloc`).
    trim_system_malloc();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_system_malloc() {
    // SAFETY: malloc_trim has no preconditions: it takes glibc's own arena locks and only
    // releases pages that hold no allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other system allocators (musl's, macOS's) return freed memory without being asked.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_system_malloc() {}

/// Runs `compile` on a rayon pool of its own, whose threads have ended when it returns.
/// wasmtime compiles a component's functions in parallel on the rayon pool it is called in; on
/// rayon's global pool, whose threads never end, mimalloc (when in use) would keep each thread's share of the
/// compiler's freed memory (hundreds of MiB for the ONNX plugin) in that thread's heap, where
/// no other thread can give it back. A thread that ends hands its pages over, to be purged by
/// the next [`release_free_memory`]. Runs it on the calling thread if no thread can be started.
pub(crate) fn compile_pool<T: Send>(compile: impl FnOnce() -> T + Send) -> T {
    let mut compile = Some(compile);
    let pooled = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("wasmflow-compile-{i}"))
        // Scoped: the threads are joined before this returns, after the pool is dropped.
        .build_scoped(
            |thread| thread.run(),
            |pool| compile.take().map(|compile| pool.install(compile)),
        );
    match (pooled, compile) {
        (Ok(Some(out)), _) => out,
        (_, Some(compile)) => compile(),
        // Unreachable: the closure either ran (and took it) or the pool was not built.
        (_, None) => unreachable!("compile_pool: the compile neither ran nor was left"),
    }
}

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
