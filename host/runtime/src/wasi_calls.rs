//! A plugin's WASI calls made safe on a thread that drives async tasks, so that a short predict
//! can run as a plain call on the tokio worker that received its request.
//!
//! wasmtime-wasi's synchronous bindings run every call that may wait (a stream's
//! `blocking-write-and-flush` and its `drop`, `poll`, each file system call, creating a UDP
//! socket) through its `in_tokio`, which `block_on`s the current tokio runtime: on a worker
//! thread of that runtime it panics, so a plugin that wrote a line to stderr in a predict took
//! the request down with it. The bindings here replace exactly those calls; the others (clocks,
//! random, `check-write`, `write`, preopens, the environment) never wait and are left as they
//! are. Each stream or poll call is polled once first, and most finish there (the plugin's
//! stdout and stderr are host streams feeding the server log, `LogSink`, always ready); a call
//! that must really wait (a file read under `/model`, a sleep) and each file system call first
//! hand the worker's other tasks to another thread (`block_in_place`), then wait as before.
//! A predict that makes no such call stays a plain call. TCP and UDP sockets cannot be created
//! in a plugin's sandbox (`PluginState::new` refuses both), so their methods are never reached.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::{WasiFilesystemCtxView, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::io::{poll as async_poll, streams as async_streams};
use wasmtime_wasi::p2::bindings::sockets::network;
use wasmtime_wasi::p2::bindings::sync::filesystem::types as fs;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::bindings::sync::sockets::udp::IpAddressFamily;
use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket;
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, DynPollable, FsError, FsResult, SocketError, SocketResult,
    StreamError, StreamResult, UdpSocket,
};
use wasmtime_wasi::runtime::in_tokio;
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView};

/// wasmtime-wasi's synchronous WASI, with the calls that may wait replaced by ones safe on an
/// async thread.
pub(crate) fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    poll::add_to_linker::<T, Io>(linker, |t| Safe(t.ctx().table))?;
    streams::add_to_linker::<T, Io>(linker, |t| Safe(t.ctx().table))?;
    fs::add_to_linker::<T, Fs>(linker, |t| Safe(t.filesystem()))?;
    udp_create_socket::add_to_linker::<T, Sockets>(linker, |t| Safe(t.sockets()))?;
    linker.allow_shadowing(false);
    Ok(())
}

/// What a WASI call was given (the resource table, the file system's or the sockets' view),
/// with the replaced calls implemented on it.
pub(crate) struct Safe<V>(V);

struct Io;

impl HasData for Io {
    type Data<'a> = Safe<&'a mut ResourceTable>;
}

struct Fs;

impl HasData for Fs {
    type Data<'a> = Safe<WasiFilesystemCtxView<'a>>;
}

struct Sockets;

impl HasData for Sockets {
    type Data<'a> = Safe<WasiSocketsCtxView<'a>>;
}

/// Runs `f`, which may wait, after handing this thread's async tasks to another thread when it
/// is a worker of a multi-threaded runtime (elsewhere `block_in_place` just runs `f`). A
/// current-thread runtime has no other thread to hand them to: `f` runs as wasmtime-wasi would
/// run it.
fn may_wait<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Awaits `future` as wasmtime-wasi does (`in_tokio`), after one poll here that finishes most
/// calls without waiting; only a future still pending goes through [`may_wait`].
fn await_call<F: Future>(future: F) -> F::Output {
    if tokio::runtime::Handle::try_current().is_err() {
        // No runtime here: `in_tokio` uses its own and cannot panic.
        return in_tokio(future);
    }
    let mut future = pin!(future);
    if let Poll::Ready(output) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return output;
    }
    may_wait(|| in_tokio(future))
}

impl poll::Host for Safe<&mut ResourceTable> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        await_call(async_poll::Host::poll(&mut *self.0, pollables))
    }
}

impl poll::HostPollable for Safe<&mut ResourceTable> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        await_call(async_poll::HostPollable::ready(&mut *self.0, pollable))
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        await_call(async_poll::HostPollable::block(&mut *self.0, pollable))
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(&mut *self.0, pollable)
    }
}

impl streams::Host for Safe<&mut ResourceTable> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(&mut *self.0, err)
    }
}

impl streams::HostOutputStream for Safe<&mut ResourceTable> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        await_call(async_streams::HostOutputStream::drop(&mut *self.0, stream))
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(&mut *self.0, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(&mut *self.0, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        await_call(async_streams::HostOutputStream::blocking_write_and_flush(
            &mut *self.0,
            stream,
            bytes,
        ))
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        await_call(
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(
                &mut *self.0,
                stream,
                len,
            ),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(&mut *self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(&mut *self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(&mut *self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        await_call(async_streams::HostOutputStream::blocking_flush(
            &mut *self.0,
            stream,
        ))
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(&mut *self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        await_call(async_streams::HostOutputStream::blocking_splice(
            &mut *self.0,
            dst,
            src,
            len,
        ))
    }
}

impl streams::HostInputStream for Safe<&mut ResourceTable> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        await_call(async_streams::HostInputStream::drop(&mut *self.0, stream))
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(&mut *self.0, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        await_call(async_streams::HostInputStream::blocking_read(
            &mut *self.0,
            stream,
            len,
        ))
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(&mut *self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        await_call(async_streams::HostInputStream::blocking_skip(
            &mut *self.0,
            stream,
            len,
        ))
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(&mut *self.0, stream)
    }
}

impl udp_create_socket::Host for Safe<WasiSocketsCtxView<'_>> {
    fn create_udp_socket(
        &mut self,
        address_family: IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        may_wait(|| udp_create_socket::Host::create_udp_socket(&mut self.0, address_family))
    }
}

/// What creating a UDP socket needs besides (its errors' conversion), as wasmtime-wasi does it.
impl network::Host for Safe<WasiSocketsCtxView<'_>> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<network::ErrorCode> {
        network::Host::convert_error_code(&mut self.0, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<network::ErrorCode>> {
        network::Host::network_error_code(&mut self.0, err)
    }
}

impl network::HostNetwork for Safe<WasiSocketsCtxView<'_>> {
    fn drop(&mut self, this: Resource<network::Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.0, this)
    }
}

impl fs::Host for Safe<WasiFilesystemCtxView<'_>> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<fs::ErrorCode> {
        fs::Host::convert_error_code(&mut self.0, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<streams::Error>,
    ) -> wasmtime::Result<Option<fs::ErrorCode>> {
        fs::Host::filesystem_error_code(&mut self.0, err)
    }
}

/// File system calls: each goes to wasmtime-wasi's own after [`may_wait`] (they run on tokio's
/// blocking pool, so they are pending at a first poll anyway), but for the handful that never
/// wait.
macro_rules! may_wait {
    ($( fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        $(
            fn $name(&mut self $(, $arg: $ty)*) -> $ret {
                may_wait(|| fs::HostDescriptor::$name(&mut self.0 $(, $arg)*))
            }
        )*
    };
}

type Fd = Resource<fs::Descriptor>;

impl fs::HostDescriptor for Safe<WasiFilesystemCtxView<'_>> {
    may_wait! {
        fn advise(&mut self, fd: Fd, offset: fs::Filesize, len: fs::Filesize, advice: fs::Advice) -> FsResult<()>;
        fn sync_data(&mut self, fd: Fd) -> FsResult<()>;
        fn get_flags(&mut self, fd: Fd) -> FsResult<fs::DescriptorFlags>;
        fn get_type(&mut self, fd: Fd) -> FsResult<fs::DescriptorType>;
        fn set_size(&mut self, fd: Fd, size: fs::Filesize) -> FsResult<()>;
        fn set_times(&mut self, fd: Fd, atim: fs::NewTimestamp, mtim: fs::NewTimestamp) -> FsResult<()>;
        fn read(&mut self, fd: Fd, len: fs::Filesize, offset: fs::Filesize) -> FsResult<(Vec<u8>, bool)>;
        fn write(&mut self, fd: Fd, buf: Vec<u8>, offset: fs::Filesize) -> FsResult<fs::Filesize>;
        fn read_directory(&mut self, fd: Fd) -> FsResult<Resource<fs::DirectoryEntryStream>>;
        fn sync(&mut self, fd: Fd) -> FsResult<()>;
        fn create_directory_at(&mut self, fd: Fd, path: String) -> FsResult<()>;
        fn stat(&mut self, fd: Fd) -> FsResult<fs::DescriptorStat>;
        fn stat_at(&mut self, fd: Fd, path_flags: fs::PathFlags, path: String) -> FsResult<fs::DescriptorStat>;
        fn set_times_at(&mut self, fd: Fd, path_flags: fs::PathFlags, path: String, atim: fs::NewTimestamp, mtim: fs::NewTimestamp) -> FsResult<()>;
        fn link_at(&mut self, fd: Fd, old_path_flags: fs::PathFlags, old_path: String, new_descriptor: Fd, new_path: String) -> FsResult<()>;
        fn open_at(&mut self, fd: Fd, path_flags: fs::PathFlags, path: String, oflags: fs::OpenFlags, flags: fs::DescriptorFlags) -> FsResult<Fd>;
        fn readlink_at(&mut self, fd: Fd, path: String) -> FsResult<String>;
        fn remove_directory_at(&mut self, fd: Fd, path: String) -> FsResult<()>;
        fn rename_at(&mut self, fd: Fd, old_path: String, new_fd: Fd, new_path: String) -> FsResult<()>;
        fn symlink_at(&mut self, fd: Fd, src_path: String, dest_path: String) -> FsResult<()>;
        fn unlink_file_at(&mut self, fd: Fd, path: String) -> FsResult<()>;
        fn is_same_object(&mut self, a: Fd, b: Fd) -> wasmtime::Result<bool>;
        fn metadata_hash(&mut self, fd: Fd) -> FsResult<fs::MetadataHashValue>;
        fn metadata_hash_at(&mut self, fd: Fd, path_flags: fs::PathFlags, path: String) -> FsResult<fs::MetadataHashValue>;
    }

    fn drop(&mut self, fd: Fd) -> wasmtime::Result<()> {
        fs::HostDescriptor::drop(&mut self.0, fd)
    }

    fn read_via_stream(
        &mut self,
        fd: Fd,
        offset: fs::Filesize,
    ) -> FsResult<Resource<streams::InputStream>> {
        fs::HostDescriptor::read_via_stream(&mut self.0, fd, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Fd,
        offset: fs::Filesize,
    ) -> FsResult<Resource<streams::OutputStream>> {
        fs::HostDescriptor::write_via_stream(&mut self.0, fd, offset)
    }

    fn append_via_stream(&mut self, fd: Fd) -> FsResult<Resource<streams::OutputStream>> {
        fs::HostDescriptor::append_via_stream(&mut self.0, fd)
    }
}

impl fs::HostDirectoryEntryStream for Safe<WasiFilesystemCtxView<'_>> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<fs::DirectoryEntryStream>,
    ) -> FsResult<Option<fs::DirectoryEntry>> {
        may_wait(|| fs::HostDirectoryEntryStream::read_directory_entry(&mut self.0, stream))
    }

    fn drop(&mut self, stream: Resource<fs::DirectoryEntryStream>) -> wasmtime::Result<()> {
        fs::HostDirectoryEntryStream::drop(&mut self.0, stream)
    }
}
