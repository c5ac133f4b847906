//! Model -> Rust: token trees built with quote, printed by prettyplease.

use crate::model::{
    ranges, ApiModel, Base, Elem, FieldModel, MessageModel, StructModel, VersionSet,
};
use crate::spec::{Direction, Spec};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};
use std::collections::BTreeSet;

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// A field name as a Rust identifier (raw for keywords).
pub fn field_ident(name: &str) -> Ident {
    if KEYWORDS.contains(&name) {
        Ident::new_raw(name, Span::call_site())
    } else {
        Ident::new(name, Span::call_site())
    }
}

/// The module name of an API: `DescribeConfigs` -> `describe_configs`.
pub fn module_name(api: &str) -> String {
    let mut s = String::new();
    for (i, c) in api.char_indices() {
        if c.is_ascii_uppercase() {
            let prev_lower = api[..i]
                .chars()
                .last()
                .is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
            let next_lower = api[i + 1..]
                .chars()
                .next()
                .is_some_and(|n| n.is_ascii_lowercase());
            if i > 0 && (prev_lower || next_lower) {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// Doc attributes, one per line, so that prettyplease prints `///` lines.
/// Square brackets in the protocol's prose (`Array[0]`) are escaped, so
/// rustdoc does not read them as links.
fn doc_attrs(text: &str) -> TokenStream {
    let text = text.replace('[', "\\[").replace(']', "\\]");
    let lines = text.split('\n').map(|l| {
        if l.is_empty() || l.starts_with(' ') {
            l.to_string()
        } else {
            format!(" {l}")
        }
    });
    quote!(#(#[doc = #lines])*)
}

/// An integer literal without a type suffix (`3`, `-1`): the type comes
/// from where it is used, as a person would write it.
fn int(v: impl Into<i64>) -> TokenStream {
    let v: i64 = v.into();
    let lit = Literal::i64_unsuffixed(v.unsigned_abs() as i64);
    if v < 0 {
        quote!(-#lit)
    } else {
        quote!(#lit)
    }
}

/// A value the encoder writes: a field (`self.x`) or a reference bound by
/// a loop or a match (`item`), so that each use reads as written by hand
/// (`self.x`, `&self.x`, `*item`, `item`).
#[derive(Clone)]
enum Val {
    /// A place such as `self.x`.
    Place(TokenStream),
    /// A variable holding a reference.
    Ref(TokenStream),
}

impl Val {
    /// The value of a `Copy` type: `self.x`, `*item`.
    fn copied(&self) -> TokenStream {
        match self {
            Val::Place(e) => e.clone(),
            Val::Ref(e) => quote!(*#e),
        }
    }

    /// A reference to the value: `&self.x`, `item`.
    fn by_ref(&self) -> TokenStream {
        match self {
            Val::Place(e) => quote!(&#e),
            Val::Ref(e) => e.clone(),
        }
    }

    /// The value as a method receiver: `self.x`, `item`.
    fn recv(&self) -> TokenStream {
        match self {
            Val::Place(e) | Val::Ref(e) => e.clone(),
        }
    }
}

fn base_type(b: Base) -> TokenStream {
    match b {
        Base::Bool => quote!(bool),
        Base::I8 => quote!(i8),
        Base::I16 => quote!(i16),
        Base::I32 => quote!(i32),
        Base::I64 => quote!(i64),
        Base::U16 => quote!(u16),
        Base::U32 => quote!(u32),
        Base::F64 => quote!(f64),
        Base::Uuid => quote!(Uuid),
        Base::Str => quote!(StrBytes),
        Base::Bytes => quote!(Bytes),
        Base::Int32Array => quote!(Int32Array),
    }
}

fn elem_type(f: &FieldModel) -> TokenStream {
    let t = match &f.elem {
        Elem::Prim(_) if is_error_code(f) => quote!(ErrorCode),
        Elem::Prim(b) => base_type(*b),
        Elem::Struct(n) => {
            let i = format_ident!("{}", n);
            quote!(#i)
        }
    };
    if f.array && f.elem_nullable {
        quote!(Option<#t>)
    } else {
        t
    }
}

/// Whether `f` holds an error code (`error_code`, `partition_error_code`,
/// ...: an INT16 named so): such fields are typed [`ErrorCode`] rather
/// than a bare `i16`.
fn is_error_code(f: &FieldModel) -> bool {
    f.name.ends_with("error_code")
        && !f.array
        && !f.is_option()
        && matches!(f.elem, Elem::Prim(Base::I16))
}

/// Whether `f` is a `[]INT32` (non-nullable elements): such fields are
/// `Int32Array`, which keeps short arrays (replica lists) inline.
fn is_int32_array(f: &FieldModel) -> bool {
    f.array && !f.elem_nullable && matches!(f.elem, Elem::Prim(Base::I32))
}

fn field_type(f: &FieldModel) -> TokenStream {
    let e = elem_type(f);
    let t = if is_int32_array(f) {
        quote!(Int32Array)
    } else if f.array {
        quote!(Vec<#e>)
    } else {
        e
    };
    if f.is_option() {
        quote!(Option<#t>)
    } else {
        t
    }
}

fn default_expr(f: &FieldModel) -> TokenStream {
    match &f.default {
        Some(lit) if !f.is_option() && !f.array => {
            let e: syn::Expr =
                syn::parse_str(lit).unwrap_or_else(|_| syn::parse_quote!(Default::default()));
            quote!(#e)
        }
        _ if f.is_option() => quote!(None),
        _ if f.array && !is_int32_array(f) => quote!(Vec::new()),
        _ if f.array => quote!(Int32Array::default()),
        _ if is_error_code(f) => quote!(ErrorCode::NONE),
        _ => match &f.elem {
            Elem::Prim(Base::Bool) => quote!(false),
            Elem::Prim(Base::F64) => quote!(0.0),
            Elem::Prim(Base::I8 | Base::I16 | Base::I32 | Base::I64 | Base::U16 | Base::U32) => {
                quote!(0)
            }
            _ => {
                let ty = field_type(f);
                quote!(#ty::default())
            }
        },
    }
}

/// Whether `dflt` is what `Default::default()` gives its type, so that
/// `#[derive(Default)]` can stand for a hand-written `impl`.
fn is_type_default(dflt: &TokenStream) -> bool {
    let text = dflt.to_string();
    matches!(
        text.as_str(),
        "0" | "0.0" | "false" | "None" | "ErrorCode :: NONE"
    ) || text.ends_with(":: default ()")
        || text.ends_with(":: new ()")
}

/// Whether `tokens` use the identifier `name`.
fn uses(tokens: &TokenStream, name: &str) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == name,
        proc_macro2::TokenTree::Group(g) => uses(&g.stream(), name),
        _ => false,
    })
}

/// A parameter's name: `name`, or `_name` when `body` does not use it.
fn param(body: &TokenStream, name: &str) -> Ident {
    if uses(body, name) {
        format_ident!("{}", name)
    } else {
        format_ident!("_{}", name)
    }
}

/// The versions `min..=max`.
fn span(min: i16, max: i16) -> VersionSet {
    (min..=max).fold(0, |s, v| s | (1 << v))
}

/// The condition "version is in `set`", knowing it is in `known`; `None`
/// when it always holds. Versions outside `known` cannot occur, so a test
/// leaves them out: `version <= 2` rather than `(0..=2).contains(&version)`
/// when nothing below 0 is known.
fn cond(set: VersionSet, known: VersionSet) -> Option<TokenStream> {
    let hit = set & known;
    if hit == known {
        return None;
    }
    if hit == 0 {
        return Some(quote!(false));
    }
    let lowest = known.trailing_zeros() as i16;
    let highest = 63 - known.leading_zeros() as i16;
    // Versions between `lowest` and `highest` that cannot occur may join a
    // range of `hit` when that saves a test.
    let gaps = !known & span(lowest, highest);
    let parts: Vec<TokenStream> = ranges(hit | gaps)
        .into_iter()
        .filter_map(|(a, b)| {
            let inside = hit & span(a, b);
            if inside == 0 {
                return None;
            }
            let a = inside.trailing_zeros() as i16;
            let b = 63 - inside.leading_zeros() as i16;
            let below = known & span(lowest, a) != 1 << a;
            let above = known & span(b, highest) != 1 << b;
            let (lit_a, lit_b) = (int(a), int(b));
            Some(match (below, above) {
                _ if a == b => quote!(version == #lit_a),
                (false, _) => quote!(version <= #lit_b),
                (true, false) => quote!(version >= #lit_a),
                (true, true) => quote!((#lit_a..=#lit_b).contains(&version)),
            })
        })
        .collect();
    Some(quote!(#(#parts)||*))
}

fn token_min_size(token: &str) -> usize {
    match token {
        "BOOLEAN" | "INT8" => 1,
        "INT16" | "UINT16" | "STRING" | "NULLABLE_STRING" => 2,
        "INT32" | "UINT32" | "BYTES" | "NULLABLE_BYTES" | "RECORDS" | "ARRAY(INT32)" => 4,
        "INT64" | "FLOAT64" => 8,
        "UUID" => 16,
        _ => 1,
    }
}

/// Writes one primitive; `v` is a `T` (an `Option<T>` when `opt`).
fn put_prim(token: &str, opt: bool, v: &Val, name: &str) -> TokenStream {
    let ctx = quote!(encode_ctx(NAME, #name, version));
    let null_err = quote!(.ok_or(WireError::NullNotAllowed).map_err(#ctx)?);
    let (copied, by_ref, recv) = (v.copied(), v.by_ref(), v.recv());
    match token {
        "BOOLEAN" => quote!(put_bool(buf, #copied);),
        "INT8" => quote!(put_i8(buf, #copied);),
        "INT16" => quote!(put_i16(buf, #copied);),
        "INT32" => quote!(put_i32(buf, #copied);),
        "INT64" => quote!(put_i64(buf, #copied);),
        "UINT16" => quote!(put_u16(buf, #copied);),
        "UINT32" => quote!(put_u32(buf, #copied);),
        "FLOAT64" => quote!(put_f64(buf, #copied);),
        "UUID" => quote!(put_uuid(buf, #by_ref);),
        "ARRAY(INT32)" => quote!(put_int32_array(buf, #by_ref).map_err(#ctx)?;),
        "RECORDS" | "COMPACT_RECORDS" => {
            let f = if token == "RECORDS" {
                quote!(put_records)
            } else {
                quote!(put_compact_records)
            };
            let arg = if opt {
                quote!(#recv.as_ref())
            } else {
                quote!(Some(#by_ref))
            };
            quote!(#f(buf, #arg).map_err(#ctx)?;)
        }
        _ => {
            let (f, nullable, is_str) = match token {
                "STRING" => (quote!(put_string), false, true),
                "COMPACT_STRING" => (quote!(put_compact_string), false, true),
                "NULLABLE_STRING" => (quote!(put_nullable_string), true, true),
                "COMPACT_NULLABLE_STRING" => (quote!(put_compact_nullable_string), true, true),
                "BYTES" => (quote!(put_bytes), false, false),
                "COMPACT_BYTES" => (quote!(put_compact_bytes), false, false),
                "NULLABLE_BYTES" | "RECORDS" => (quote!(put_nullable_bytes), true, false),
                _ => (quote!(put_compact_nullable_bytes), true, false),
            };
            let arg = match (nullable, opt, is_str) {
                (true, true, _) => quote!(#recv.as_deref()),
                (true, false, true) => quote!(Some(#recv.as_str())),
                (true, false, false) => quote!(Some(&#recv[..])),
                (false, true, true) => quote!(#recv.as_ref() #null_err .as_str()),
                (false, true, false) => quote!(&#recv.as_ref() #null_err [..]),
                (false, false, true) => quote!(#recv.as_str()),
                (false, false, false) => quote!(&#recv[..]),
            };
            quote!(#f(buf, #arg).map_err(#ctx)?;)
        }
    }
}

/// Reads one primitive; the expression has type `T`, or `Option<T>` when
/// `opt` (wrapping non-null tokens in `Some`).
fn get_prim(token: &str, opt: bool, name: &str) -> TokenStream {
    let ctx = quote!(decode_ctx(NAME, #name, version));
    let (f, nullable) = match token {
        "BOOLEAN" => (quote!(get_bool), false),
        "INT8" => (quote!(get_i8), false),
        "INT16" => (quote!(get_i16), false),
        "INT32" => (quote!(get_i32), false),
        "INT64" => (quote!(get_i64), false),
        "UINT16" => (quote!(get_u16), false),
        "UINT32" => (quote!(get_u32), false),
        "FLOAT64" => (quote!(get_f64), false),
        "UUID" => (quote!(get_uuid), false),
        "ARRAY(INT32)" => (quote!(get_int32_array), false),
        "STRING" => (quote!(get_string), false),
        "COMPACT_STRING" => (quote!(get_compact_string), false),
        "NULLABLE_STRING" => (quote!(get_nullable_string), true),
        "COMPACT_NULLABLE_STRING" => (quote!(get_compact_nullable_string), true),
        "BYTES" => (quote!(get_bytes), false),
        "COMPACT_BYTES" => (quote!(get_compact_bytes), false),
        "NULLABLE_BYTES" | "RECORDS" => (quote!(get_nullable_bytes), true),
        _ => (quote!(get_compact_nullable_bytes), true),
    };
    let e = quote!(#f(buf).map_err(#ctx)?);
    if opt && !nullable {
        quote!(Some(#e))
    } else {
        e
    }
}

/// One encoding variant of a field: the versions it covers, its token (empty
/// for structs), whether compact, whether null is allowed.
struct Variant {
    set: VersionSet,
    token: String,
    compact: bool,
    nullable: bool,
    /// Null only accepted on read (a broker quirk): tests never write it.
    lenient: bool,
}

fn variants(f: &FieldModel, flexible: VersionSet) -> Vec<Variant> {
    let mut out: Vec<Variant> = Vec::new();
    for (a, b) in ranges(f.versions) {
        for v in a..=b {
            // Only an array's length prefix differs between flexible and
            // older versions (strings and bytes say so in their token), so
            // versions of a non-array field that differ only there share
            // one branch.
            let compact = f.array && flexible & (1 << v) != 0;
            let nullable = f.nullable & (1 << v) != 0;
            let lenient = f.lenient_nullable & (1 << v) != 0;
            let mut token = f.tokens.get(&v).cloned().unwrap_or_default();
            // The overlay can make a scalar string or bytes nullable: read
            // and write it with the nullable form of its token.
            if nullable && !f.array {
                token = nullable_form(&token);
            }
            match out.iter_mut().find(|x| {
                x.token == token
                    && x.compact == compact
                    && x.nullable == nullable
                    && x.lenient == lenient
            }) {
                Some(x) => x.set |= 1 << v,
                None => out.push(Variant {
                    set: 1 << v,
                    token,
                    compact,
                    nullable,
                    lenient,
                }),
            }
        }
    }
    out
}

/// `if` / `else if` over version sets, knowing the version is in `known`:
/// branches with the same body are one branch, a test that the versions
/// before it already decide is left out, and the last branch is a plain
/// `else` (or the body alone) when the branches cover `known`.
/// `otherwise` runs for versions no branch covers.
fn chain(
    branches: Vec<(VersionSet, TokenStream)>,
    known: VersionSet,
    otherwise: Option<TokenStream>,
) -> TokenStream {
    let mut merged: Vec<(VersionSet, TokenStream, String)> = Vec::new();
    for (set, body) in branches {
        let text = body.to_string();
        match merged.iter_mut().find(|m| m.2 == text) {
            Some(m) => m.0 |= set,
            None => merged.push((set, body, text)),
        }
    }
    let mut out = TokenStream::new();
    let mut left = known;
    for (i, (set, body, _)) in merged.into_iter().enumerate() {
        let kw = if i == 0 { quote!(if) } else { quote!(else if) };
        match cond(set, left) {
            None if i == 0 => return body,
            None => {
                out.extend(quote!(else { #body }));
                return out;
            }
            Some(c) => out.extend(quote!(#kw #c { #body })),
        }
        left &= !set;
    }
    if let Some(o) = otherwise {
        if left == 0 {
            return out;
        }
        if out.is_empty() {
            return o;
        }
        out.extend(quote!(else { #o }));
    }
    out
}

/// Writes one field; `shares`: the enclosing encoder is generic over
/// `Sink` (`buf: &mut S`), so nested structs without records are handed
/// the plain buffer.
fn encode_value(
    f: &FieldModel,
    var: &Variant,
    v: &Val,
    shares: bool,
    records: &BTreeSet<String>,
) -> TokenStream {
    let name = f.name.as_str();
    let ctx = quote!(encode_ctx(NAME, #name, version));
    let nested = |item: TokenStream| match &f.elem {
        Elem::Struct(n) if records.contains(n) => quote!(#item.encode_to(buf, version)?;),
        _ if shares => quote!(#item.encode(buf.bytes_mut(), version)?;),
        _ => quote!(#item.encode(buf, version)?;),
    };
    let elem_put = |item: &Val| match &f.elem {
        Elem::Struct(_) => nested(item.recv()),
        Elem::Prim(_) => put_prim(&var.token, f.array && f.elem_nullable, item, name),
    };
    if f.array {
        let len_fn = if var.compact {
            quote!(put_compact_array_len)
        } else {
            quote!(put_array_len)
        };
        let body = elem_put(&Val::Ref(quote!(item)));
        let write_items = |items: TokenStream, iter: TokenStream| {
            quote! {
                #len_fn(buf, Some(#items.len())).map_err(#ctx)?;
                for item in #iter { #body }
            }
        };
        if f.is_option() {
            let none = if var.nullable {
                quote!(#len_fn(buf, None).map_err(#ctx)?;)
            } else {
                quote!(return Err(#ctx(WireError::NullNotAllowed));)
            };
            let some = write_items(quote!(items), quote!(items));
            let by_ref = v.by_ref();
            quote!(match #by_ref { None => { #none } Some(items) => { #some } })
        } else {
            write_items(v.recv(), v.by_ref())
        }
    } else {
        match &f.elem {
            Elem::Struct(_) if f.is_option() => {
                let none = if var.nullable {
                    quote!(put_i8(buf, -1);)
                } else {
                    quote!(return Err(#ctx(WireError::NullNotAllowed));)
                };
                let enc = nested(quote!(s));
                let by_ref = v.by_ref();
                quote!(match #by_ref { None => { #none } Some(s) => { put_i8(buf, 1); #enc } })
            }
            Elem::Struct(_) => nested(v.recv()),
            Elem::Prim(_) if is_error_code(f) => {
                let code = v.recv();
                quote!(put_i16(buf, #code.0);)
            }
            Elem::Prim(_) => put_prim(&var.token, f.is_option(), v, name),
        }
    }
}

fn decode_value(f: &FieldModel, var: &Variant) -> TokenStream {
    let name = f.name.as_str();
    let ctx = quote!(decode_ctx(NAME, #name, version));
    let elem_get = match &f.elem {
        Elem::Struct(s) => {
            let s = format_ident!("{}", s);
            quote!(#s::decode(buf, version)?)
        }
        Elem::Prim(_) => get_prim(&var.token, f.array && f.elem_nullable, name),
    };
    if f.array {
        let len_fn = if var.compact {
            quote!(get_compact_array_len)
        } else {
            quote!(get_array_len)
        };
        let min = int(match &f.elem {
            Elem::Struct(_) => 1,
            Elem::Prim(_) => token_min_size(&var.token) as i64,
        });
        let none = if f.is_option() {
            quote!(None)
        } else {
            quote!(return Err(#ctx(WireError::NullNotAllowed)))
        };
        let some = if f.is_option() {
            quote!(Some(items))
        } else {
            quote!(items)
        };
        // Arrays of INT32 (replica lists, partition indexes) are read in
        // one pass: one bounds check, no per-element cursor updates.
        let bulk = is_int32_array(f);
        if bulk {
            let items = quote!(get_i32_array(buf, n).map_err(#ctx)?);
            let some_bulk = if f.is_option() {
                quote!(Some(#items))
            } else {
                items
            };
            return quote! {
                match #len_fn(buf, #min).map_err(#ctx)? {
                    None => #none,
                    Some(n) => #some_bulk,
                }
            };
        }
        // Struct elements are decoded in their place in the Vec: returned
        // by value, a large struct was copied twice (`memmove`) on its way in.
        let fill = match &f.elem {
            Elem::Struct(st) if !f.elem_nullable => {
                let st = format_ident!("{}", st);
                quote! {
                    for i in 0..n {
                        items.push(#st::default());
                        #st::decode_into(&mut items[i], buf, version)?;
                    }
                }
            }
            _ => quote!(for _ in 0..n { items.push(#elem_get); }),
        };
        quote! {
            match #len_fn(buf, #min).map_err(#ctx)? {
                None => #none,
                Some(n) => {
                    let mut items = Vec::with_capacity(n);
                    #fill
                    #some
                }
            }
        }
    } else {
        match &f.elem {
            Elem::Struct(s) if f.is_option() => {
                let s = format_ident!("{}", s);
                quote!(if get_i8(buf).map_err(#ctx)? < 0 { None } else { Some(#s::decode(buf, version)?) })
            }
            Elem::Struct(_) => elem_get,
            // A broker quirk (`null_on_read`): read the nullable form and
            // take null as None, or as the default for a non-optional type.
            Elem::Prim(_) if var.lenient => {
                let e = get_prim(&nullable_form(&var.token), true, name);
                if f.is_option() {
                    e
                } else {
                    quote!(#e.unwrap_or_default())
                }
            }
            Elem::Prim(_) if is_error_code(f) => {
                let e = get_prim(&var.token, false, name);
                quote!(ErrorCode(#e))
            }
            Elem::Prim(_) => get_prim(&var.token, f.is_option(), name),
        }
    }
}

/// The nullable token with the same encoding (`STRING` -> `NULLABLE_STRING`).
fn nullable_form(token: &str) -> String {
    match token {
        "STRING" => "NULLABLE_STRING".into(),
        "COMPACT_STRING" => "COMPACT_NULLABLE_STRING".into(),
        "BYTES" => "NULLABLE_BYTES".into(),
        "COMPACT_BYTES" => "COMPACT_NULLABLE_BYTES".into(),
        t => t.into(),
    }
}

fn random_prim(token: &str) -> TokenStream {
    match token {
        "BOOLEAN" => quote!(rng.bool()),
        "INT8" => quote!(rng.u64() as i8),
        "INT16" => quote!(rng.u64() as i16),
        "INT32" => quote!(rng.u64() as i32),
        "INT64" => quote!(rng.u64() as i64),
        "UINT16" => quote!(rng.u64() as u16),
        "UINT32" => quote!(rng.u64() as u32),
        "FLOAT64" => quote!(rng.f64()),
        "UUID" => quote!(rng.uuid()),
        "ARRAY(INT32)" => quote!(rng.int32_array()),
        t if t.contains("STRING") => quote!(rng.string()),
        _ => quote!(rng.bytes()),
    }
}

fn random_value(f: &FieldModel, var: &Variant) -> TokenStream {
    let elem = match &f.elem {
        Elem::Struct(s) => {
            let s = format_ident!("{}", s);
            quote!(#s::random(rng, version))
        }
        Elem::Prim(_) => {
            let p = random_prim(&var.token);
            let p = if is_error_code(f) {
                quote!(ErrorCode(#p))
            } else {
                p
            };
            let token_nullable = crate::model::token_base(&var.token).is_some_and(|t| t.1);
            let elem_opt = if f.array {
                f.elem_nullable
            } else {
                f.is_option()
            };
            match (elem_opt, token_nullable && !var.lenient) {
                (true, true) => quote!(if rng.bool() { None } else { Some(#p) }),
                (true, false) => quote!(Some(#p)),
                _ => p,
            }
        }
    };
    let v = if f.array {
        quote!((0..rng.count()).map(|_| #elem).collect())
    } else {
        elem
    };
    let struct_or_array = f.array || matches!(f.elem, Elem::Struct(_));
    match (
        f.is_option() && struct_or_array,
        var.nullable && !var.lenient,
    ) {
        (true, true) => quote!(if rng.bool() { None } else { Some(#v) }),
        (true, false) => quote!(Some(#v)),
        _ => v,
    }
}

fn emit_struct(
    s: &StructModel,
    m: &MessageModel,
    root: bool,
    records: &BTreeSet<String>,
) -> TokenStream {
    let shares = records.contains(&s.name);
    let name = format_ident!("{}", s.name);
    let name_str = s.name.as_str();
    let (min, max) = (m.min, m.max);
    let all = span(min, max);
    let (min_lit, max_lit) = (int(min), int(max));
    let flexible_all = m.root().flexible;
    let doc = if root {
        format!(
            " The {} {} (versions {}-{}{}).",
            m.api,
            m.dir.as_str().to_lowercase(),
            min,
            max,
            m.first_flexible()
                .map(|v| format!("; flexible from {v}"))
                .unwrap_or_default()
        )
    } else if s.doc.is_empty() {
        format!(" An element of {} `{}`.", m.root().name, s.path.join("."))
    } else {
        format!(" {}", s.doc)
    };
    let mut fields = Vec::new();
    let mut defaults = Vec::new();
    let mut derivable = true;
    let mut withs = Vec::new();
    let mut enc = Vec::new();
    let mut dec = Vec::new();
    let mut tagged_enc = Vec::new();
    let mut tagged_dec = Vec::new();
    let mut rand = Vec::new();
    for f in &s.fields {
        let id = field_ident(&f.name);
        let ty = field_type(f);
        let vr: Vec<String> = ranges(f.versions)
            .iter()
            .map(|(a, b)| {
                if *b >= max {
                    format!("{a}+")
                } else if a == b {
                    format!("{a}")
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        let mut d = if f.doc.is_empty() {
            String::new()
        } else {
            format!(" {}", f.doc)
        };
        d.push_str(&format!("\n\n Versions: {}.", vr.join(", ")));
        if let Some(t) = f.tag {
            d.push_str(&format!(" Tagged field {t}."));
        }
        if f.nullable != 0 {
            let nr: Vec<String> = ranges(f.nullable)
                .iter()
                .map(|(a, b)| {
                    if *b >= max {
                        format!("{a}+")
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            d.push_str(&format!(" Nullable: {}.", nr.join(", ")));
        }
        let d = doc_attrs(&d);
        fields.push(quote!(#d pub #id: #ty,));
        let dflt = default_expr(f);
        derivable &= is_type_default(&dflt);
        defaults.push(quote!(#id: #dflt,));
        let with = format_ident!("with_{}", f.name);
        let wd = format!(" Sets `{}`.", f.name);
        if is_int32_array(f) && !f.is_option() {
            withs.push(quote!(#[doc = #wd] pub fn #with(mut self, value: impl Into<Int32Array>) -> Self { self.#id = value.into(); self }));
        } else {
            withs.push(quote!(#[doc = #wd] pub fn #with(mut self, value: #ty) -> Self { self.#id = value; self }));
        }

        let fname = f.name.as_str();
        let vars = variants(f, flexible_all);
        let field = Val::Place(quote!(self.#id));
        let encodes = |vars: &[Variant]| -> Vec<(VersionSet, TokenStream)> {
            vars.iter()
                .map(|v| (v.set, encode_value(f, v, &field, shares, records)))
                .collect()
        };
        let decodes: Vec<(VersionSet, TokenStream)> = vars
            .iter()
            .map(|v| {
                let x = decode_value(f, v);
                (v.set, quote!(this.#id = #x;))
            })
            .collect();
        let x = chain(
            vars.iter().map(|v| (v.set, random_value(f, v))).collect(),
            all,
            Some(dflt.clone()),
        );
        rand.push(quote!(#id: #x,));
        let set = if f.is_option() {
            quote!(self.#id.is_some())
        } else if f.array {
            quote!(!self.#id.is_empty())
        } else if is_error_code(f) {
            quote!(!self.#id.is_ok())
        } else {
            match dflt.to_string().as_str() {
                "false" => quote!(self.#id),
                "true" => quote!(!self.#id),
                _ => quote!(self.#id != #dflt),
            }
        };
        let not_in_version = quote! {
            if #set { return Err(encode_ctx(NAME, #fname, version)(WireError::FieldNotInVersion)); }
        };
        let in_versions = cond(f.versions, all);
        if let Some(tag) = f.tag {
            let tag_lit = int(tag);
            let e = chain(encodes(&vars), f.versions & all, None);
            let put = quote! {
                if #set {
                    let mut tagged = BytesMut::new();
                    { let buf = &mut tagged; #e }
                    known.push((#tag_lit, tagged));
                }
            };
            tagged_enc.push(match &in_versions {
                Some(c) => quote!(if #c { #put } else { #not_in_version }),
                None => put,
            });
            let d = chain(decodes, f.versions & all, None);
            let guard = match &in_versions {
                Some(c) => quote!(#tag_lit if #c),
                None => quote!(#tag_lit),
            };
            tagged_dec.push(quote! {
                #guard => {
                    let declared = data.len();
                    { let buf = &mut data; #d }
                    check_tag_consumed(tag, declared, &data).map_err(decode_ctx(NAME, #fname, version))?;
                }
            });
            continue;
        }
        let otherwise = in_versions.is_some().then_some(not_in_version);
        enc.push(chain(encodes(&vars), all, otherwise));
        dec.push(chain(decodes, all, None));
    }
    let flex = cond(s.flexible, all);
    let has_flex = s.flexible != 0;
    if has_flex {
        fields.push(quote!(#[doc = " Tagged fields this code does not know, kept as read and written back in tag order."] pub unknown_tagged_fields: UnknownTaggedFields,));
        defaults.push(quote!(unknown_tagged_fields: UnknownTaggedFields::new(),));
        let body = if tagged_enc.is_empty() {
            quote! {
                put_tagged_fields(buf, &[], &self.unknown_tagged_fields).map_err(encode_ctx(NAME, "_tagged_fields", version))?;
            }
        } else {
            quote! {
                let mut known: Vec<(u32, BytesMut)> = Vec::new();
                #(#tagged_enc)*
                put_tagged_fields(buf, &known, &self.unknown_tagged_fields).map_err(encode_ctx(NAME, "_tagged_fields", version))?;
            }
        };
        enc.push(match &flex {
            Some(c) => quote!(if #c { #body } else if !self.unknown_tagged_fields.is_empty() { return Err(encode_ctx(NAME, "_tagged_fields", version)(WireError::FieldNotInVersion)); }),
            None => body,
        });
        let keep = quote!(this
            .unknown_tagged_fields
            .push(RawTaggedField { tag, data }));
        let (read_field, sort) = if tagged_dec.is_empty() {
            (
                quote!(let (tag, data) = get_tagged_field(buf).map_err(decode_ctx(NAME, "_tagged_fields", version))?;),
                quote!(#keep;),
            )
        } else {
            (
                quote!(let (tag, mut data) = get_tagged_field(buf).map_err(decode_ctx(NAME, "_tagged_fields", version))?;),
                quote!(match tag { #(#tagged_dec)* _ => #keep }),
            )
        };
        let body = quote! {
            let count = get_tagged_count(buf).map_err(decode_ctx(NAME, "_tagged_fields", version))?;
            let mut last = None;
            for _ in 0..count {
                #read_field
                check_tag_order(&mut last, tag).map_err(decode_ctx(NAME, "_tagged_fields", version))?;
                #sort
            }
        };
        dec.push(match &flex {
            Some(c) => quote!(if #c { #body }),
            None => body,
        });
    }
    let check = if root {
        quote!(if !(#min_lit..=#max_lit).contains(&version) { return Err(encode_ctx(NAME, "", version)(WireError::UnsupportedVersion(version))); })
    } else {
        quote!()
    };
    let dcheck = if root {
        quote!(if !(#min_lit..=#max_lit).contains(&version) { return Err(decode_ctx(NAME, "", version)(WireError::UnsupportedVersion(version))); })
    } else {
        quote!()
    };
    if has_flex {
        let x = chain(
            vec![(s.flexible, quote!(rng.unknown_tagged_fields()))],
            all,
            Some(quote!(UnknownTaggedFields::new())),
        );
        rand.push(quote!(unknown_tagged_fields: #x,));
    }
    let (derive_default, default_impl) = if derivable {
        (quote!(Default,), quote!())
    } else {
        (
            quote!(),
            quote! {
                impl Default for #name {
                    fn default() -> Self { #name { #(#defaults)* } }
                }
            },
        )
    };
    let enc_body = quote!(#check #(#enc)*);
    let dec_body = quote!(#dcheck #(#dec)*);
    let rand_body = quote!(#(#rand)*);
    // Parameters a body does not use are named `_x`, and `NAME` is only
    // declared where an error may name it (an empty struct uses neither).
    let name_const = |body: &TokenStream| {
        if uses(body, "NAME") {
            quote!(const NAME: &str = #name_str;)
        } else {
            quote!()
        }
    };
    let (enc_name, dec_name) = (name_const(&enc_body), name_const(&dec_body));
    let (enc_buf, enc_version) = (param(&enc_body, "buf"), param(&enc_body, "version"));
    let (dec_this, dec_buf, dec_version) = (
        param(&dec_body, "this"),
        param(&dec_body, "buf"),
        param(&dec_body, "version"),
    );
    let (rand_rng, rand_version) = (param(&rand_body, "rng"), param(&rand_body, "version"));
    let rand_fn = if rand_body.is_empty() {
        quote!(Self::default())
    } else {
        quote!(Self { #rand_body })
    };
    let encode_body = quote! {
        #enc_name
        #enc_body
        Ok(())
    };
    let encode_fns = if shares {
        quote! {
            /// Appends this value, as `version` lays it out, to `buf`.
            ///
            /// # Errors
            /// An [`EncodeError`] naming the field that this version cannot carry.
            pub fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
                self.encode_to(buf, version)
            }

            /// Appends this value, as `version` lays it out, to `buf`; its
            /// records go through [`Sink::put_records_value`] (a [`FrameBuf`]
            /// shares them instead of copying).
            ///
            /// # Errors
            /// As [`Self::encode`].
            pub fn encode_to<S: Sink + ?Sized>(&self, #enc_buf: &mut S, #enc_version: i16) -> Result<(), EncodeError> {
                #encode_body
            }
        }
    } else {
        quote! {
            /// Appends this value, as `version` lays it out, to `buf`.
            ///
            /// # Errors
            /// An [`EncodeError`] naming the field that this version cannot carry.
            pub fn encode(&self, #enc_buf: &mut BytesMut, #enc_version: i16) -> Result<(), EncodeError> {
                #encode_body
            }
        }
    };
    quote! {
        #[doc = #doc]
        #[derive(Debug, Clone, #derive_default PartialEq)]
        #[non_exhaustive]
        pub struct #name { #(#fields)* }

        #default_impl

        impl #name {
            #(#withs)*

            #encode_fns

            /// Reads a value as `version` lays it out.
            ///
            /// # Errors
            /// A [`DecodeError`] naming the field, for input that does not fit.
            pub fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {
                let mut this = Self::default();
                Self::decode_into(&mut this, buf, version)?;
                Ok(this)
            }

            /// Reads a value as `version` lays it out into `this` (a
            /// default value), where it already lies.
            fn decode_into(#dec_this: &mut Self, #dec_buf: &mut Bytes, #dec_version: i16) -> Result<(), DecodeError> {
                #dec_name
                #dec_body
                Ok(())
            }
        }

        #[cfg(any(test, feature = "random"))]
        impl #name {
            /// A random value that `version` can carry, for round-trip tests.
            pub fn random(#rand_rng: &mut crate::random::Rand, #rand_version: i16) -> Self {
                #rand_fn
            }
        }
    }
}

/// The structs of `m` that hold a RECORDS field, directly or through a
/// nested struct: their encoders are generic over `Sink` so that a
/// `FrameBuf` can share the records instead of copying them.
pub fn structs_with_records(m: &MessageModel) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    loop {
        let before = set.len();
        for s in &m.structs {
            let has = s.fields.iter().any(|f| match &f.elem {
                Elem::Struct(n) => set.contains(n),
                Elem::Prim(_) => f.tokens.values().any(|t| is_records_token(t)),
            });
            if has {
                set.insert(s.name.clone());
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

fn is_records_token(t: &str) -> bool {
    t == "RECORDS" || t == "COMPACT_RECORDS"
}

fn emit_message(m: &MessageModel) -> TokenStream {
    let mut out = TokenStream::new();
    let records = structs_with_records(m);
    for (i, s) in m.structs.iter().enumerate() {
        out.extend(emit_struct(s, m, i == 0, &records));
    }
    let root_shares = records.contains(&m.root().name);
    let name = format_ident!("{}", m.root().name);
    let name_str = m.root().name.as_str();
    let (min_lit, max_lit) = (int(m.min), int(m.max));
    let frame_fn = if root_shares {
        quote!(fn encode_to_frame(&self, frame: &mut FrameBuf, version: i16) -> Result<(), EncodeError> { #name::encode_to(self, frame, version) })
    } else {
        quote!()
    };
    out.extend(quote! {
        impl Message for #name {
            const NAME: &'static str = #name_str;
            const MIN_VERSION: i16 = #min_lit;
            const MAX_VERSION: i16 = #max_lit;
            fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> { #name::encode(self, buf, version) }
            fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> { #name::decode(buf, version) }
            #frame_fn
        }
    });
    out
}

fn header_comment(stamp: &str) -> String {
    format!("// @generated by wipro-gen from spec/protocol.txt and spec/overlay.txt ({stamp}). Do not edit: run `cargo run -p wipro-gen`.\n")
}

fn print(tokens: TokenStream) -> Result<String, String> {
    let file: syn::File =
        syn::parse2(tokens).map_err(|e| format!("internal: generated code does not parse: {e}"))?;
    Ok(prettyplease::unparse(&file))
}

fn header_version_fn(
    fn_name: &Ident,
    overrides: &[(crate::overlay::Versions, i16)],
    flexible: Option<i16>,
    flex_v: i16,
    old_v: i16,
) -> TokenStream {
    let arms: Vec<TokenStream> = overrides
        .iter()
        .map(|(v, h)| {
            let (a, b, h) = (int(v.min), int(v.max), int(*h));
            if a.to_string() == b.to_string() {
                quote!(if version == #a { return #h; })
            } else {
                quote!(if (#a..=#b).contains(&version) { return #h; })
            }
        })
        .collect();
    let base = match flexible {
        Some(f) => {
            let (f, flex_v, old_v) = (int(f), int(flex_v), int(old_v));
            quote!(if version >= #f { #flex_v } else { #old_v })
        }
        None => int(old_v),
    };
    let doc = format!(
        " The {} header version for `version`.",
        if fn_name == "request_header_version" {
            "request"
        } else {
            "response"
        }
    );
    let body = quote!(#(#arms)* #base);
    let version = param(&body, "version");
    quote!(#[doc = #doc] fn #fn_name(#version: i16) -> i16 { #body })
}

/// One generated file: its path relative to `generated/` and its text.
pub struct File {
    /// e.g. `metadata.rs`.
    pub name: String,
    /// The file's text.
    pub text: String,
}

/// Emits every file of `kpax-proto/src/generated/`.
///
/// # Errors
/// An internal error when the tokens do not form valid Rust.
pub fn emit_all(
    spec: &Spec,
    apis: &[ApiModel],
    headers: &[MessageModel],
    stamp: &str,
) -> Result<Vec<File>, String> {
    let head = header_comment(stamp);
    let uses = quote! {
        use crate::message::{Message, Request};
        use crate::wire::*;
        use bytes::{Bytes, BytesMut};
        use super::ApiKey;
    };
    let mut files = Vec::new();
    for a in apis {
        let module = module_name(&a.name);
        let mut body = uses.clone();
        let has_error_codes = [&a.request, &a.response]
            .iter()
            .flat_map(|m| &m.structs)
            .flat_map(|s| &s.fields)
            .any(is_error_code);
        if has_error_codes {
            body.extend(quote!(
                use super::ErrorCode;
            ));
        }
        body.extend(emit_message(&a.request));
        body.extend(emit_message(&a.response));
        let req = format_ident!("{}", a.request.root().name);
        let resp = format_ident!("{}", a.response.root().name);
        let variant = format_ident!("{}", a.name);
        let flex = a.request.first_flexible();
        let flex_tok = match flex {
            Some(v) => {
                let v = int(v);
                quote!(Some(#v))
            }
            None => quote!(None),
        };
        let rq = header_version_fn(
            &format_ident!("request_header_version"),
            &a.request_header,
            flex,
            2,
            1,
        );
        let rs = header_version_fn(
            &format_ident!("response_header_version"),
            &a.response_header,
            flex,
            1,
            0,
        );
        body.extend(quote! {
            impl Request for #req {
                const API_KEY: ApiKey = ApiKey::#variant;
                const FIRST_FLEXIBLE_VERSION: Option<i16> = #flex_tok;
                type Response = #resp;
                #rq
                #rs
            }
        });
        let doc = format!("//! The {} API (key {}).\n", a.name, a.key);
        files.push(File {
            name: format!("{module}.rs"),
            text: format!("{head}{doc}\n{}", print(body)?),
        });
    }
    // Headers: messages of their own, not an API's.
    let mut body = quote! {
        use crate::message::Message;
        use crate::wire::*;
        use bytes::{Bytes, BytesMut};
    };
    for h in headers {
        body.extend(emit_message(h));
    }
    files.push(File {
        name: "headers.rs".into(),
        text: format!(
            "{head}//! Request and response headers, every version.\n\n{}",
            print(body)?
        ),
    });
    files.push(File {
        name: "error_code.rs".into(),
        text: format!(
            "{head}//! The protocol's error codes.\n\n{}",
            print(emit_errors(spec))?
        ),
    });
    files.push(File {
        name: "mod.rs".into(),
        text: format!("{head}//! The generated messages: one module per API, plus headers, API keys and error codes.\n\n{}", print(emit_mod(apis))?),
    });
    Ok(files)
}

fn emit_errors(spec: &Spec) -> TokenStream {
    let mut consts = Vec::new();
    let mut names = Vec::new();
    let mut retriable = Vec::new();
    let mut docs = Vec::new();
    for e in &spec.errors {
        let id = format_ident!("{}", e.name);
        let code = int(e.code);
        let d = if e.doc.is_empty() {
            format!(" `{}` ({}).", e.name, code)
        } else {
            format!(" {} (`{}`, {})", e.doc, e.name, code)
        };
        consts.push(quote!(#[doc = #d] pub const #id: ErrorCode = ErrorCode(#code);));
        let n = e.name.as_str();
        names.push(quote!(#code => Some(#n),));
        if e.retriable {
            retriable.push(quote!(#code));
        }
        let doc = e.doc.as_str();
        docs.push(quote!(#code => #doc,));
    }
    quote! {
        /// A Kafka error code. Codes this version of the spec does not know are
        /// kept as their number.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
        pub struct ErrorCode(pub i16);

        impl ErrorCode {
            #(#consts)*

            /// The code's name, e.g. `NOT_LEADER_OR_FOLLOWER`, or `None` for an unknown code.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { #(#names)* _ => None }
            }

            /// Whether the spec marks the error retriable (unknown codes are not).
            pub fn is_retriable(self) -> bool {
                matches!(self.0, #(#retriable)|*)
            }

            /// The spec's description (empty for unknown codes).
            pub fn description(self) -> &'static str {
                match self.0 { #(#docs)* _ => "" }
            }

            /// Whether this is `NONE` (0): no error.
            pub fn is_ok(self) -> bool {
                self.0 == 0
            }
        }

        impl From<i16> for ErrorCode {
            fn from(code: i16) -> Self { ErrorCode(code) }
        }

        impl std::fmt::Display for ErrorCode {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{} ({})", n, self.0),
                    None => write!(f, "UNKNOWN_ERROR_CODE ({})", self.0),
                }
            }
        }
    }
}

fn emit_mod(apis: &[ApiModel]) -> TokenStream {
    let mods: Vec<Ident> = apis
        .iter()
        .map(|a| format_ident!("{}", module_name(&a.name)))
        .collect();
    let variants: Vec<Ident> = apis.iter().map(|a| format_ident!("{}", a.name)).collect();
    let keys: Vec<TokenStream> = apis.iter().map(|a| int(a.key)).collect();
    let names: Vec<&str> = apis.iter().map(|a| a.name.as_str()).collect();
    let reqs: Vec<Ident> = apis
        .iter()
        .map(|a| format_ident!("{}", a.request.root().name))
        .collect();
    let resps: Vec<Ident> = apis
        .iter()
        .map(|a| format_ident!("{}", a.response.root().name))
        .collect();
    let mod_docs: Vec<String> = apis
        .iter()
        .map(|a| format!(" The {} API (key {}).", a.name, a.key))
        .collect();
    let var_docs: Vec<String> = apis
        .iter()
        .map(|a| format!(" {} (key {}).", a.name, a.key))
        .collect();
    quote! {
        use crate::message::{Message, Request};
        use crate::wire::{DecodeError, EncodeError, WireError, decode_ctx};
        use bytes::{Bytes, BytesMut};

        pub mod error_code;
        pub mod headers;
        #(#[doc = #mod_docs] pub mod #mods;)*

        pub use error_code::ErrorCode;
        pub use headers::{RequestHeader, ResponseHeader};
        #(pub use #mods::{#reqs, #resps};)*

        /// The API keys of every API in the spec.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i16)]
        pub enum ApiKey {
            #(#[doc = #var_docs] #variants = #keys,)*
        }

        impl ApiKey {
            /// Every API key, ascending.
            pub const ALL: &'static [ApiKey] = &[#(ApiKey::#variants),*];

            /// The API's name, e.g. `Metadata`.
            pub fn name(self) -> &'static str {
                match self { #(ApiKey::#variants => #names,)* }
            }

            /// The lowest and highest request version this code knows.
            pub fn versions(self) -> (i16, i16) {
                match self { #(ApiKey::#variants => (#reqs::MIN_VERSION, #reqs::MAX_VERSION),)* }
            }

            /// The request header version for request `version`.
            pub fn request_header_version(self, version: i16) -> i16 {
                match self { #(ApiKey::#variants => <#reqs as Request>::request_header_version(version),)* }
            }

            /// The response header version for request `version`.
            pub fn response_header_version(self, version: i16) -> i16 {
                match self { #(ApiKey::#variants => <#reqs as Request>::response_header_version(version),)* }
            }
        }

        impl TryFrom<i16> for ApiKey {
            type Error = WireError;
            fn try_from(key: i16) -> Result<Self, WireError> {
                match key { #(#keys => Ok(ApiKey::#variants),)* _ => Err(WireError::UnknownApiKey(key)) }
            }
        }

        /// Any request, for tools that handle frames of every API (a fake broker, a frame inspector).
        #[derive(Debug, Clone, PartialEq)]
        pub enum RequestKind {
            #(#[doc = #var_docs] #variants(#reqs),)*
        }

        /// Any response.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ResponseKind {
            #(#[doc = #var_docs] #variants(#resps),)*
        }

        impl RequestKind {
            /// The request's API key.
            pub fn api_key(&self) -> ApiKey {
                match self { #(RequestKind::#variants(_) => ApiKey::#variants,)* }
            }

            /// Decodes a request body of API `api_key` at `version`.
            ///
            /// # Errors
            /// A [`DecodeError`], also for an unknown API key.
            pub fn decode(api_key: i16, version: i16, buf: &mut Bytes) -> Result<Self, DecodeError> {
                let key = ApiKey::try_from(api_key).map_err(decode_ctx("RequestKind", "api_key", version))?;
                Ok(match key { #(ApiKey::#variants => RequestKind::#variants(#reqs::decode(buf, version)?),)* })
            }

            /// Encodes the request body at `version`.
            ///
            /// # Errors
            /// As the message's own `encode`.
            pub fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
                match self { #(RequestKind::#variants(m) => m.encode(buf, version),)* }
            }
        }

        #[cfg(any(test, feature = "random"))]
        impl RequestKind {
            /// A random request of API `key` that `version` can carry, for tests.
            pub fn random(key: ApiKey, rng: &mut crate::random::Rand, version: i16) -> Self {
                match key { #(ApiKey::#variants => RequestKind::#variants(#reqs::random(rng, version)),)* }
            }
        }

        #[cfg(any(test, feature = "random"))]
        impl ResponseKind {
            /// A random response of API `key` that `version` can carry, for tests.
            pub fn random(key: ApiKey, rng: &mut crate::random::Rand, version: i16) -> Self {
                match key { #(ApiKey::#variants => ResponseKind::#variants(#resps::random(rng, version)),)* }
            }
        }

        impl ResponseKind {
            /// The response's API key.
            pub fn api_key(&self) -> ApiKey {
                match self { #(ResponseKind::#variants(_) => ApiKey::#variants,)* }
            }

            /// Decodes a response body of API `api_key` at `version`.
            ///
            /// # Errors
            /// A [`DecodeError`], also for an unknown API key.
            pub fn decode(api_key: i16, version: i16, buf: &mut Bytes) -> Result<Self, DecodeError> {
                let key = ApiKey::try_from(api_key).map_err(decode_ctx("ResponseKind", "api_key", version))?;
                Ok(match key { #(ApiKey::#variants => ResponseKind::#variants(#resps::decode(buf, version)?),)* })
            }

            /// Encodes the response body at `version`.
            ///
            /// # Errors
            /// As the message's own `encode`.
            pub fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
                match self { #(ResponseKind::#variants(m) => m.encode(buf, version),)* }
            }
        }
    }
}

/// Which direction a header model is for (used by callers building headers).
pub fn header_dirs() -> [Direction; 2] {
    [Direction::Request, Direction::Response]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: Option<TokenStream>) -> String {
        t.map(|t| t.to_string()).unwrap_or_default()
    }

    #[test]
    fn cond_leaves_out_the_bounds_it_knows() {
        let all = span(0, 9);
        assert_eq!(text(cond(span(0, 9), all)), "");
        assert_eq!(text(cond(span(0, 2), all)), "version <= 2");
        assert_eq!(text(cond(span(3, 9), all)), "version >= 3");
        assert_eq!(
            text(cond(span(3, 5), all)),
            "(3 ..= 5) . contains (& version)"
        );
        assert_eq!(text(cond(1 << 4, all)), "version == 4");
        assert_eq!(
            text(cond(span(0, 1) | span(5, 6), all)),
            "version <= 1 || (5 ..= 6) . contains (& version)"
        );
        assert_eq!(text(cond(0, all)), "false");
        // Versions 3..=5 already decided: 6..=9 is "the rest".
        assert_eq!(text(cond(span(0, 2), all & !span(3, 5))), "version <= 2");
        assert_eq!(
            text(cond(span(6, 9), span(6, 9) | span(0, 2))),
            "version >= 6"
        );
        // Unknown versions may close a gap: 1 and 3 with 2 impossible.
        assert_eq!(
            text(cond(2 | 8, span(0, 5) & !4)),
            "(1 ..= 3) . contains (& version)"
        );
    }

    #[test]
    fn chain_merges_equal_bodies_and_ends_in_else() {
        let all = span(0, 5);
        let (a, b) = (quote!(a();), quote!(b();));
        assert_eq!(
            chain(
                vec![(span(0, 2), a.clone()), (span(3, 5), b.clone())],
                all,
                None
            )
            .to_string(),
            "if version <= 2 { a () ; } else { b () ; }"
        );
        assert_eq!(
            chain(
                vec![(span(0, 2), a.clone()), (span(3, 5), a.clone())],
                all,
                None
            )
            .to_string(),
            "a () ;"
        );
        // A field only some versions carry: the rest goes to `otherwise`.
        assert_eq!(
            chain(vec![(span(3, 5), a.clone())], all, Some(b.clone())).to_string(),
            "if version >= 3 { a () ; } else { b () ; }"
        );
        assert_eq!(
            chain(vec![(span(0, 1), a), (span(2, 3), b)], all, None).to_string(),
            "if version <= 1 { a () ; } else if version <= 3 { b () ; }"
        );
    }

    #[test]
    fn integers_carry_no_suffix() {
        assert_eq!(int(3i16).to_string(), "3");
        assert_eq!(int(-1i16).to_string(), "- 1");
        assert_eq!(int(0u32).to_string(), "0");
    }

    #[test]
    fn unused_parameters_are_named_with_an_underscore() {
        let body = quote!(put_i32(buf, self.x););
        assert_eq!(param(&body, "buf").to_string(), "buf");
        assert_eq!(param(&body, "version").to_string(), "_version");
    }
}
