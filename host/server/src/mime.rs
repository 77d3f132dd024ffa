//! The headers of an artifact download, as MLflow's server sends them (`_send_artifact` and
//! `_guess_mime_type`): the MIME type guessed from the file name, `Content-Disposition:
//! attachment` so a browser saves rather than renders the file on the server's origin, and
//! `X-Content-Type-Options: nosniff`.
//!
//! The table is Python's own (`mimetypes` defaults, strict, as in Python 3.11) rather than a
//! crate's: MLflow answers what Python's `mimetypes.guess_type` answers, and the general-purpose
//! tables (`mime_guess`) disagree with it on common names (`.ico`, `.js`, `.webp`, `.tar.gz`).
//! A system's `/etc/mime.types`, which Python also reads, varies by machine and is not used.

use axum::http::{HeaderMap, HeaderValue, header};

/// Extensions (and extension-less names) MLflow always serves as `text/plain`, so its UI can
/// preview them (`mlflow.utils.mime_type_utils.get_text_extensions`).
const TEXT_EXTENSIONS: &[&str] = &[
    "txt",
    "log",
    "err",
    "cfg",
    "conf",
    "cnf",
    "cf",
    "ini",
    "properties",
    "prop",
    "hocon",
    "toml",
    "yaml",
    "yml",
    "xml",
    "json",
    "js",
    "py",
    "py3",
    "csv",
    "tsv",
    "md",
    "rst",
    "ipynb",
    "MLmodel",
    "MLproject",
];

/// The MIME type MLflow answers for a file named `file_name` (the last path component).
pub fn guess(file_name: &str) -> &'static str {
    let name = file_name.rsplit('/').next().unwrap_or(file_name);
    let (_, ext) = split_ext(name);
    let ext = ext.replace('.', "");
    let key = if ext.is_empty() { name } else { ext.as_str() };
    if TEXT_EXTENSIONS.contains(&key) {
        return "text/plain";
    }
    guess_type(name).unwrap_or("application/octet-stream")
}

/// Python's `posixpath.splitext`: the extension is from the last dot on, unless every character
/// before that dot is a dot (`.bashrc` has none).
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if name[..i].chars().any(|c| c != '.') => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// Python's `mimetypes.guess_type(name)[0]` with the default tables: suffix aliases (`.tgz` is
/// `.tar.gz`), then a compression suffix names the encoding and the type is that of what is
/// left (`model.tar.gz` is `application/x-tar`), then the type of the extension as written, or
/// lower-cased.
fn guess_type(name: &str) -> Option<&'static str> {
    let mut owned = name.to_string();
    let (mut base, mut ext) = {
        let (b, e) = split_ext(&owned);
        (b.to_string(), e.to_string())
    };
    while let Some(alias) = suffix_alias(&ext) {
        owned = format!("{base}{alias}");
        let (b, e) = split_ext(&owned);
        (base, ext) = (b.to_string(), e.to_string());
    }
    if is_encoding(&ext) {
        let (_, e) = split_ext(&base);
        ext = e.to_string();
    }
    types_map(&ext).or_else(|| types_map(&ext.to_ascii_lowercase()))
}

fn suffix_alias(ext: &str) -> Option<&'static str> {
    Some(match ext {
        ".svgz" => ".svg.gz",
        ".tgz" | ".taz" | ".tz" => ".tar.gz",
        ".tbz2" => ".tar.bz2",
        ".txz" => ".tar.xz",
        _ => return None,
    })
}

fn is_encoding(ext: &str) -> bool {
    matches!(ext, ".gz" | ".Z" | ".bz2" | ".xz" | ".br")
}

/// Python 3.11's `mimetypes._types_map_default` (the strict table).
fn types_map(ext: &str) -> Option<&'static str> {
    Some(match ext {
        ".js" | ".mjs" => "application/javascript",
        ".json" => "application/json",
        ".webmanifest" => "application/manifest+json",
        ".doc" | ".dot" | ".wiz" => "application/msword",
        ".nq" => "application/n-quads",
        ".nt" => "application/n-triples",
        ".bin" | ".a" | ".dll" | ".exe" | ".o" | ".obj" | ".so" => "application/octet-stream",
        ".oda" => "application/oda",
        ".pdf" => "application/pdf",
        ".p7c" => "application/pkcs7-mime",
        ".ps" | ".ai" | ".eps" => "application/postscript",
        ".trig" => "application/trig",
        ".m3u" | ".m3u8" => "application/vnd.apple.mpegurl",
        ".xls" | ".xlb" => "application/vnd.ms-excel",
        ".ppt" | ".pot" | ".ppa" | ".pps" | ".pwz" => "application/vnd.ms-powerpoint",
        ".wasm" => "application/wasm",
        ".bcpio" => "application/x-bcpio",
        ".cpio" => "application/x-cpio",
        ".csh" => "application/x-csh",
        ".dvi" => "application/x-dvi",
        ".gtar" => "application/x-gtar",
        ".hdf" => "application/x-hdf",
        ".h5" => "application/x-hdf5",
        ".latex" => "application/x-latex",
        ".mif" => "application/x-mif",
        ".cdf" | ".nc" => "application/x-netcdf",
        ".p12" | ".pfx" => "application/x-pkcs12",
        ".ram" => "application/x-pn-realaudio",
        ".pyc" | ".pyo" => "application/x-python-code",
        ".sh" => "application/x-sh",
        ".shar" => "application/x-shar",
        ".swf" => "application/x-shockwave-flash",
        ".sv4cpio" => "application/x-sv4cpio",
        ".sv4crc" => "application/x-sv4crc",
        ".tar" => "application/x-tar",
        ".tcl" => "application/x-tcl",
        ".tex" => "application/x-tex",
        ".texi" | ".texinfo" => "application/x-texinfo",
        ".roff" | ".t" | ".tr" => "application/x-troff",
        ".man" => "application/x-troff-man",
        ".me" => "application/x-troff-me",
        ".ms" => "application/x-troff-ms",
        ".ustar" => "application/x-ustar",
        ".src" => "application/x-wais-source",
        ".xsl" | ".rdf" | ".wsdl" | ".xpdl" => "application/xml",
        ".zip" => "application/zip",
        ".3gp" | ".3gpp" => "audio/3gpp",
        ".3g2" | ".3gpp2" => "audio/3gpp2",
        ".aac" | ".adts" | ".loas" | ".ass" => "audio/aac",
        ".au" | ".snd" => "audio/basic",
        ".mp3" | ".mp2" => "audio/mpeg",
        ".opus" => "audio/opus",
        ".aif" | ".aifc" | ".aiff" => "audio/x-aiff",
        ".ra" => "audio/x-pn-realaudio",
        ".wav" => "audio/x-wav",
        ".avif" => "image/avif",
        ".bmp" => "image/bmp",
        ".gif" => "image/gif",
        ".heic" => "image/heic",
        ".heif" => "image/heif",
        ".ief" => "image/ief",
        ".jpg" | ".jpe" | ".jpeg" => "image/jpeg",
        ".png" => "image/png",
        ".svg" => "image/svg+xml",
        ".tiff" | ".tif" => "image/tiff",
        ".ico" => "image/vnd.microsoft.icon",
        ".ras" => "image/x-cmu-raster",
        ".pnm" => "image/x-portable-anymap",
        ".pbm" => "image/x-portable-bitmap",
        ".pgm" => "image/x-portable-graymap",
        ".ppm" => "image/x-portable-pixmap",
        ".rgb" => "image/x-rgb",
        ".xbm" => "image/x-xbitmap",
        ".xpm" => "image/x-xpixmap",
        ".xwd" => "image/x-xwindowdump",
        ".eml" | ".mht" | ".mhtml" | ".nws" => "message/rfc822",
        ".css" => "text/css",
        ".csv" => "text/csv",
        ".html" | ".htm" => "text/html",
        ".n3" => "text/n3",
        ".txt" | ".bat" | ".c" | ".h" | ".ksh" | ".pl" | ".srt" => "text/plain",
        ".rtx" => "text/richtext",
        ".tsv" => "text/tab-separated-values",
        ".vtt" => "text/vtt",
        ".py" => "text/x-python",
        ".etx" => "text/x-setext",
        ".sgm" | ".sgml" => "text/x-sgml",
        ".vcf" => "text/x-vcard",
        ".xml" => "text/xml",
        ".mp4" => "video/mp4",
        ".mpeg" | ".m1v" | ".mpa" | ".mpe" | ".mpg" => "video/mpeg",
        ".mov" | ".qt" => "video/quicktime",
        ".webm" => "video/webm",
        ".avi" => "video/x-msvideo",
        ".movie" => "video/x-sgi-movie",
        _ => return None,
    })
}

/// `Content-Disposition: attachment; filename=...` as MLflow writes it (werkzeug's
/// `quote_header_value`: bare when every character is a token character, quoted otherwise); a
/// non-ASCII name adds RFC 5987's `filename*=UTF-8''...` next to an ASCII stand-in.
pub fn content_disposition(file_name: &str) -> String {
    if file_name.is_ascii() {
        return format!("attachment; filename={}", quote_header_value(file_name));
    }
    // MLflow transliterates with NFKD first; dropping what is not ASCII keeps the letters of
    // most Latin names' stand-ins too, and `filename*` carries the real name either way.
    let fallback: String = file_name.chars().filter(char::is_ascii).collect();
    let fallback = if fallback.is_empty() {
        "download".to_string()
    } else {
        fallback
    };
    const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    format!(
        "attachment; filename={}; filename*=UTF-8''{}",
        quote_header_value(&fallback),
        percent_encoding::utf8_percent_encode(file_name, ATTR_CHAR)
    )
}

fn quote_header_value(value: &str) -> String {
    const TOKEN: &str = "!#$%&'*+-.^_`|~";
    if value.is_empty() {
        return "\"\"".into();
    }
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || TOKEN.contains(c))
    {
        return value.to_string();
    }
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Sets the download headers for the artifact at `path` (its last component names the file).
pub fn set_download_headers(headers: &mut HeaderMap, path: &str, size: u64) {
    let name = path.rsplit('/').next().unwrap_or(path);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(guess(name)));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&content_disposition(name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_as_mlflow_answers_them() {
        for (name, want) in [
            ("MLmodel", "text/plain"),
            ("MLproject", "text/plain"),
            ("requirements.txt", "text/plain"),
            ("conda.yaml", "text/plain"),
            ("script.js", "text/plain"),
            ("train.py", "text/plain"),
            ("plot.png", "image/png"),
            ("Plot.PNG", "image/png"),
            ("report.pdf", "application/pdf"),
            ("model.pkl", "application/octet-stream"),
            ("page.html", "text/html"),
            ("icon.svg", "image/svg+xml"),
            ("model.tar.gz", "application/x-tar"),
            ("data.tgz", "application/x-tar"),
            ("data.csv.gz", "text/csv"),
            ("weights.gz", "application/octet-stream"),
            (".bashrc", "application/octet-stream"),
            ("noext", "application/octet-stream"),
            ("a/b/c.jpg", "image/jpeg"),
        ] {
            assert_eq!(guess(name), want, "{name}");
        }
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            content_disposition("model.pkl"),
            "attachment; filename=model.pkl"
        );
        assert_eq!(
            content_disposition("my file.txt"),
            "attachment; filename=\"my file.txt\""
        );
        assert_eq!(
            content_disposition("a\"b.txt"),
            "attachment; filename=\"a\\\"b.txt\""
        );
        assert_eq!(
            content_disposition("日本.txt"),
            "attachment; filename=.txt; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
        );
    }
}
