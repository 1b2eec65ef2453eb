//! The capOS interface generator: reads a `CodeGeneratorRequest` (what
//! `capnp compile -o-` writes) and emits `capos-schema/src/generated/interfaces.rs`:
//! per interface, its id, name and method ordinals, a typed client and a server
//! trait with a dispatch function; per plain struct, an owned mirror.
//!
//! Every id and ordinal comes from the request. Paths to `capnpc`'s items come
//! from `capnpc`'s own scope map, so the two outputs always agree.

use std::collections::HashMap;
use std::fmt::Write as _;

use capnp::schema_capnp::{field, node, type_};
use capnpc::codegen::GeneratorContext;

use super::naming::{camel_case, fresh, ident, screaming_case, snake_case};
use super::{CodegenError, HEADER};

/// Names a client reserves for itself; a schema method may not use them.
const CLIENT_OWN_METHODS: &[&str] = &["new", "cap_id", "transport", "into_transport"];

/// Generates `interfaces.rs` (unformatted) from an encoded `CodeGeneratorRequest`.
pub fn generate(request: &[u8]) -> Result<String, CodegenError> {
    let mut options = capnp::message::ReaderOptions::new();
    options.traversal_limit_in_words(None);
    let message = capnp::serialize::read_message(request, options)?;
    let ctx = GeneratorContext::new(&message)?;
    let schema = Schema::load(&ctx)?;
    schema.render()
}

/// A field type as the generated code sees it.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Void,
    /// A Rust primitive: `bool`, integers, floats.
    Prim(&'static str),
    Enum(u64),
    Text,
    Data,
    List(Box<Kind>),
    Struct(u64),
    Interface(u64),
    /// No plain Rust form (the reason is for messages).
    Other(&'static str),
}

#[derive(Clone, Debug)]
struct Field {
    /// The schema name, e.g. `writeLine`.
    name: String,
    /// `capnpc`'s accessor suffix, e.g. `write_line` in `get_write_line`.
    accessor: String,
    /// The Rust identifier for it in generated code.
    ident: String,
    kind: Kind,
    doc: Option<String>,
}

/// A struct's fields in declaration order, or why it has no plain form.
#[derive(Clone, Debug)]
struct StructShape {
    fields: Vec<Field>,
    /// Why the struct cannot be mirrored field by field (a union, a group,
    /// generic parameters), if it cannot.
    irregular: Option<&'static str>,
}

struct Method {
    name: String,
    ident: String,
    konst: String,
    ordinal: u16,
    /// Path of `capnpc`'s params and results modules.
    params_path: String,
    results_path: String,
    /// Module-local names to re-export when the structs are the method's own.
    local_params: Option<String>,
    local_results: Option<String>,
    params: StructShape,
    results: StructShape,
    doc: Option<String>,
}

struct Interface {
    id: u64,
    /// Schema name relative to the file, e.g. `Console`.
    display: String,
    /// CamelCase Rust name, e.g. `Console` or `OuterInner`.
    rust: String,
    /// Module name, e.g. `console`.
    module: String,
    /// `capnpc`'s module for it, e.g. `crate::capos_capnp::console`.
    capnp_path: String,
    methods: Vec<Method>,
    doc: Option<String>,
}

struct Mirror {
    id: u64,
    rust: String,
    capnp_path: String,
    shape: StructShape,
    doc: Option<String>,
}

struct EnumInfo {
    rust: String,
    capnp_path: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Scope {
    /// Top level of `interfaces.rs`.
    Top,
    /// Inside an interface's module.
    Module,
}

struct Docs {
    node: Option<String>,
    members: Vec<Option<String>>,
}

struct Schema {
    interfaces: Vec<Interface>,
    mirrors: Vec<Mirror>,
    enums: Vec<EnumInfo>,
    /// Rust names of mirrored structs.
    mirror_names: HashMap<u64, String>,
    /// Structs (transitively) holding a float, which cannot derive `Eq`.
    has_float: HashMap<u64, bool>,
    /// `capnpc`'s path of every enum in the request.
    enum_paths: HashMap<u64, String>,
}

/// Everything read from the request, before any code is written.
struct Loader<'c, 'a> {
    ctx: &'c GeneratorContext<'a>,
    docs: HashMap<u64, Docs>,
    interfaces: Vec<Interface>,
    structs: Vec<(u64, String, Option<String>)>,
    enums: Vec<EnumInfo>,
}

fn non_empty(text: &str) -> Option<String> {
    let trimmed = text.trim_end();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

impl Schema {
    fn load(ctx: &GeneratorContext<'_>) -> Result<Self, CodegenError> {
        let mut docs = HashMap::new();
        for info in ctx.request.get_source_info()? {
            let members = info
                .get_members()?
                .iter()
                .map(|m| Ok(non_empty(m.get_doc_comment()?.to_str()?)))
                .collect::<Result<Vec<_>, CodegenError>>()?;
            let node = non_empty(info.get_doc_comment()?.to_str()?);
            docs.insert(info.get_id(), Docs { node, members });
        }
        let mut loader =
            Loader { ctx, docs, interfaces: Vec::new(), structs: Vec::new(), enums: Vec::new() };
        for file in ctx.request.get_requested_files()? {
            loader.walk(file.get_id(), "", "")?;
        }

        let mut mirror_ok = HashMap::new();
        let mut mirrors = Vec::new();
        let mut mirror_names = HashMap::new();
        for (id, rust, doc) in &loader.structs {
            if loader.mirrorable(*id, &mut Vec::new(), &mut mirror_ok)? {
                mirror_names.insert(*id, rust.clone());
                mirrors.push(Mirror {
                    id: *id,
                    rust: rust.clone(),
                    capnp_path: ctx.get_qualified_module(*id),
                    shape: loader.shape(*id)?,
                    doc: doc.clone(),
                });
            }
        }
        // A struct holding a float, directly or through another struct, cannot
        // derive `Eq`; spread that until nothing changes.
        let mut has_float: HashMap<u64, bool> = mirrors.iter().map(|m| (m.id, false)).collect();
        loop {
            let mut changed = false;
            for mirror in &mirrors {
                let float = mirror.shape.fields.iter().any(|f| kind_has_float(&f.kind, &has_float));
                if float && !has_float[&mirror.id] {
                    has_float.insert(mirror.id, true);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let enum_paths = ctx
            .node_map
            .iter()
            .filter(|(_, n)| matches!(n.which(), Ok(node::Enum(_))))
            .filter_map(|(id, _)| ctx.scope_map.get(id).map(|path| (*id, path.join("::"))))
            .collect();
        Ok(Self {
            enum_paths,
            interfaces: loader.interfaces,
            mirrors,
            enums: loader.enums,
            mirror_names,
            has_float,
        })
    }
}

/// Whether a field of this kind holds a float, given what is known so far
/// about the structs in `known`.
fn kind_has_float(kind: &Kind, known: &HashMap<u64, bool>) -> bool {
    match kind {
        Kind::Prim(p) => p.starts_with('f'),
        Kind::List(elem) => kind_has_float(elem, known),
        Kind::Struct(id) => known.get(id).copied().unwrap_or(false),
        _ => false,
    }
}

impl<'a> Loader<'_, 'a> {
    fn node(&self, id: u64) -> Result<node::Reader<'a>, CodegenError> {
        self.ctx
            .node_map
            .get(&id)
            .copied()
            .ok_or_else(|| CodegenError::Schema(format!("node {id:#x} is not in the request")))
    }

    fn doc(&self, id: u64) -> Option<String> {
        self.docs.get(&id).and_then(|d| d.node.clone())
    }

    fn member_doc(&self, id: u64, index: usize) -> Option<String> {
        self.docs.get(&id).and_then(|d| d.members.get(index).cloned().flatten())
    }

    /// Visits the nodes nested in `id` in declaration order. `display` and
    /// `rust` are the enclosing scope's schema and Rust names.
    fn walk(&mut self, id: u64, display: &str, rust: &str) -> Result<(), CodegenError> {
        let node = self.node(id)?;
        for nested in node.get_nested_nodes()? {
            let name = nested.get_name()?.to_string()?;
            let child_display =
                if display.is_empty() { name.clone() } else { format!("{display}.{name}") };
            let child_rust = format!("{rust}{}", camel_case(&name));
            let child = nested.get_id();
            match self.node(child)?.which()? {
                node::Struct(s) if !s.get_is_group() => {
                    self.structs.push((child, child_rust.clone(), self.doc(child)));
                }
                node::Interface(_) => {
                    let interface = self.interface(child, &child_display, &child_rust)?;
                    self.interfaces.push(interface);
                }
                node::Enum(_) => self.enums.push(EnumInfo {
                    rust: child_rust.clone(),
                    capnp_path: self.ctx.get_qualified_module(child),
                }),
                _ => {}
            }
            self.walk(child, &child_display, &child_rust)?;
        }
        Ok(())
    }

    fn interface(&self, id: u64, display: &str, rust: &str) -> Result<Interface, CodegenError> {
        let node = self.node(id)?;
        let node::Interface(iface) = node.which()? else {
            return Err(CodegenError::Schema(format!("{display} is not an interface")));
        };
        if node.get_is_generic() {
            return Err(CodegenError::Schema(format!(
                "interface {display} is generic; capOS interfaces cannot be generic"
            )));
        }
        if !iface.get_superclasses()?.is_empty() {
            return Err(CodegenError::Schema(format!(
                "interface {display} extends another; capOS interfaces do not inherit yet"
            )));
        }
        let scope = self.ctx.get_qualified_module(id);
        let mut methods = Vec::new();
        for (index, method) in iface.get_methods()?.iter().enumerate() {
            let name = method.get_name()?.to_string()?;
            let ordinal = u16::try_from(index).map_err(|_| {
                CodegenError::Schema(format!("interface {display} has more than 65536 methods"))
            })?;
            let method_ident = ident(&name);
            if CLIENT_OWN_METHODS.contains(&method_ident.as_str()) {
                return Err(CodegenError::Schema(format!(
                    "method {display}.{name} would collide with the client's own `{method_ident}`; \
                     rename the method"
                )));
            }
            let (params_path, local_params) =
                self.method_struct(&scope, method.get_param_struct_type(), &name, "Params")?;
            let (results_path, local_results) =
                self.method_struct(&scope, method.get_result_struct_type(), &name, "Results")?;
            methods.push(Method {
                ident: method_ident,
                konst: screaming_case(&name),
                ordinal,
                params: self.shape(method.get_param_struct_type())?,
                results: self.shape(method.get_result_struct_type())?,
                params_path,
                results_path,
                local_params,
                local_results,
                doc: self.member_doc(id, index),
                name,
            });
        }
        Ok(Interface {
            id,
            display: display.to_string(),
            rust: rust.to_string(),
            module: ident(rust),
            capnp_path: scope,
            methods,
            doc: self.doc(id),
        })
    }

    /// Where `capnpc` puts a method's params or results struct: the method's
    /// own struct (scope id 0) goes in the interface module as
    /// `<method>_params`; a named struct stays where it is declared.
    fn method_struct(
        &self,
        interface_scope: &str,
        id: u64,
        method: &str,
        suffix: &str,
    ) -> Result<(String, Option<String>), CodegenError> {
        let node = self.node(id)?;
        if node.get_scope_id() == 0 {
            let local = ident(&format!("{method}{suffix}"));
            Ok((format!("{interface_scope}::{local}"), Some(local)))
        } else if node.get_is_generic() {
            Err(CodegenError::Schema(format!(
                "method {method} uses generic struct {}; capOS methods cannot",
                node.get_display_name()?.to_str()?
            )))
        } else {
            Ok((self.ctx.get_qualified_module(id), None))
        }
    }

    fn shape(&self, id: u64) -> Result<StructShape, CodegenError> {
        let node = self.node(id)?;
        let node::Struct(s) = node.which()? else {
            return Err(CodegenError::Schema(format!("node {id:#x} is not a struct")));
        };
        let mut irregular = None;
        if node.get_is_generic() {
            irregular = Some("it is generic");
        } else if s.get_discriminant_count() > 0 {
            irregular = Some("it has a union");
        }
        let mut fields = Vec::new();
        for (index, f) in s.get_fields()?.iter().enumerate() {
            let name = f.get_name()?.to_string()?;
            let kind = match f.which()? {
                field::Slot(slot) => self.kind(slot.get_type()?)?,
                field::Group(_) => {
                    irregular = irregular.or(Some("it has a group"));
                    continue;
                }
            };
            fields.push((
                f.get_code_order(),
                Field {
                    accessor: snake_case(&name),
                    ident: ident(&name),
                    kind,
                    doc: self.member_doc(id, index),
                    name,
                },
            ));
        }
        fields.sort_by_key(|(order, _)| *order);
        Ok(StructShape { fields: fields.into_iter().map(|(_, f)| f).collect(), irregular })
    }

    fn kind(&self, ty: type_::Reader<'_>) -> Result<Kind, CodegenError> {
        Ok(match ty.which()? {
            type_::Void(()) => Kind::Void,
            type_::Bool(()) => Kind::Prim("bool"),
            type_::Int8(()) => Kind::Prim("i8"),
            type_::Int16(()) => Kind::Prim("i16"),
            type_::Int32(()) => Kind::Prim("i32"),
            type_::Int64(()) => Kind::Prim("i64"),
            type_::Uint8(()) => Kind::Prim("u8"),
            type_::Uint16(()) => Kind::Prim("u16"),
            type_::Uint32(()) => Kind::Prim("u32"),
            type_::Uint64(()) => Kind::Prim("u64"),
            type_::Float32(()) => Kind::Prim("f32"),
            type_::Float64(()) => Kind::Prim("f64"),
            type_::Text(()) => Kind::Text,
            type_::Data(()) => Kind::Data,
            type_::Enum(e) => Kind::Enum(e.get_type_id()),
            type_::Struct(s) => {
                if self.node(s.get_type_id())?.get_is_generic() {
                    Kind::Other("a generic struct")
                } else {
                    Kind::Struct(s.get_type_id())
                }
            }
            type_::Interface(i) => Kind::Interface(i.get_type_id()),
            type_::AnyPointer(_) => Kind::Other("an untyped pointer"),
            type_::List(l) => match self.kind(l.get_element_type()?)? {
                Kind::List(_) => Kind::Other("a list of lists"),
                Kind::Interface(_) => Kind::Other("a list of caps"),
                Kind::Void => Kind::Other("a list of Void"),
                Kind::Other(why) => Kind::Other(why),
                elem => Kind::List(Box::new(elem)),
            },
        })
    }

    /// Whether struct `id` has an owned mirror: no union, group or generic
    /// parameter, no caps, and only mirrorable structs inside (not itself).
    fn mirrorable(
        &self,
        id: u64,
        visiting: &mut Vec<u64>,
        memo: &mut HashMap<u64, bool>,
    ) -> Result<bool, CodegenError> {
        if let Some(ok) = memo.get(&id) {
            return Ok(*ok);
        }
        if visiting.contains(&id) {
            return Ok(false);
        }
        visiting.push(id);
        let shape = self.shape(id)?;
        let mut ok = shape.irregular.is_none();
        for f in &shape.fields {
            if ok {
                ok = self.owned_ok(&f.kind, visiting, memo)?;
            }
        }
        visiting.pop();
        memo.insert(id, ok);
        Ok(ok)
    }

    fn owned_ok(
        &self,
        kind: &Kind,
        visiting: &mut Vec<u64>,
        memo: &mut HashMap<u64, bool>,
    ) -> Result<bool, CodegenError> {
        Ok(match kind {
            Kind::Void | Kind::Prim(_) | Kind::Enum(_) | Kind::Text | Kind::Data => true,
            Kind::List(elem) => self.owned_ok(elem, visiting, memo)?,
            Kind::Struct(id) => self.mirrorable(*id, visiting, memo)?,
            Kind::Interface(_) | Kind::Other(_) => false,
        })
    }
}

/// Appends a doc comment, one `///` line per line of `doc`.
fn doc_lines(out: &mut String, doc: Option<&str>) {
    if let Some(doc) = doc {
        for line in doc.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                out.push_str("///\n");
            } else {
                let _ = writeln!(out, "/// {line}");
            }
        }
    }
}

impl Schema {
    fn mirror(&self, id: u64, scope: Scope) -> Option<String> {
        let name = self.mirror_names.get(&id)?;
        Some(match scope {
            Scope::Top => name.clone(),
            Scope::Module => format!("super::{name}"),
        })
    }

    fn enum_path(&self, id: u64) -> String {
        self.enum_paths.get(&id).cloned().unwrap_or_default()
    }

    /// Whether a field of this kind has an owned form (caps excluded).
    fn owned(&self, kind: &Kind) -> bool {
        match kind {
            Kind::Void | Kind::Prim(_) | Kind::Enum(_) | Kind::Text | Kind::Data => true,
            Kind::List(elem) => self.owned(elem),
            Kind::Struct(id) => self.mirror_names.contains_key(id),
            Kind::Interface(_) | Kind::Other(_) => false,
        }
    }

    /// Whether a method's params become plain arguments.
    fn plain_params(&self, shape: &StructShape) -> bool {
        shape.irregular.is_none() && shape.fields.iter().all(|f| self.owned(&f.kind))
    }

    /// Whether a method's results become plain values (caps as CapIds).
    fn plain_results(&self, shape: &StructShape) -> bool {
        shape.irregular.is_none()
            && shape
                .fields
                .iter()
                .all(|f| matches!(f.kind, Kind::Interface(_)) || self.owned(&f.kind))
    }

    /// The owned Rust type of a field.
    fn owned_type(&self, kind: &Kind, scope: Scope) -> String {
        match kind {
            Kind::Void => "()".into(),
            Kind::Prim(p) => (*p).into(),
            Kind::Enum(id) => self.enum_path(*id),
            Kind::Text => "::alloc::string::String".into(),
            Kind::Data => "::alloc::vec::Vec<u8>".into(),
            Kind::List(elem) => {
                format!("::alloc::vec::Vec<{}>", self.owned_type(elem, scope))
            }
            Kind::Struct(id) => self.mirror(*id, scope).unwrap_or_default(),
            Kind::Interface(_) => "u64".into(),
            Kind::Other(_) => "()".into(),
        }
    }

    /// The borrowed argument type of a params field.
    fn arg_type(&self, kind: &Kind) -> String {
        match kind {
            Kind::Text => "&str".into(),
            Kind::Data => "&[u8]".into(),
            Kind::Struct(id) => format!("&{}", self.mirror(*id, Scope::Top).unwrap_or_default()),
            Kind::List(elem) => {
                let elem = match &**elem {
                    Kind::Text => "&str".into(),
                    Kind::Data => "&[u8]".into(),
                    other => self.owned_type(other, Scope::Top),
                };
                format!("&[{elem}]")
            }
            other => self.owned_type(other, Scope::Top),
        }
    }

    /// An expression reading field `f` of reader `reader` into its owned form,
    /// in a function returning `capnp::Result`.
    fn read_expr(&self, f: &Field, reader: &str) -> String {
        let get = format!("{reader}.get_{}()", f.accessor);
        match &f.kind {
            Kind::Void => "()".into(),
            Kind::Prim(_) => get,
            Kind::Enum(_) => format!("{get}?"),
            Kind::Text => format!("{get}?.to_string()?"),
            Kind::Data => format!("{get}?.to_vec()"),
            Kind::Struct(id) => format!(
                "<{} as crate::rpc::SchemaStruct>::read_from({get}?)?",
                self.mirror(*id, Scope::Top).unwrap_or_default()
            ),
            Kind::List(elem) => {
                let item = match &**elem {
                    Kind::Prim(_) => return format!("{get}?.iter().collect()"),
                    Kind::Enum(_) => "item?".to_string(),
                    Kind::Text => "item?.to_string()?".to_string(),
                    Kind::Data => "item?.to_vec()".to_string(),
                    Kind::Struct(id) => format!(
                        "<{} as crate::rpc::SchemaStruct>::read_from(item)?",
                        self.mirror(*id, Scope::Top).unwrap_or_default()
                    ),
                    _ => "()".to_string(),
                };
                format!(
                    "{{ let mut items = ::alloc::vec::Vec::new(); \
                     for item in {get}?.iter() {{ items.push({item}); }} items }}"
                )
            }
            Kind::Interface(_) | Kind::Other(_) => "()".into(),
        }
    }

    /// Statements writing `value` (an owned field or a borrowed argument) into
    /// field `f` of builder `builder`, in a function returning `capnp::Result`.
    fn write_stmt(&self, f: &Field, builder: &str, value: &str) -> String {
        let a = &f.accessor;
        match &f.kind {
            Kind::Prim(_) | Kind::Enum(_) | Kind::Text | Kind::Data => {
                format!("{builder}.set_{a}({value});\n")
            }
            Kind::Struct(id) => format!(
                "<{} as crate::rpc::SchemaStruct>::write_to({value}, {builder}.reborrow().init_{a}())?;\n",
                self.mirror(*id, Scope::Top).unwrap_or_default()
            ),
            Kind::List(elem) => {
                let set = match &**elem {
                    Kind::Prim(_) | Kind::Enum(_) => "list.set(index, *item);".to_string(),
                    Kind::Text | Kind::Data => "list.set(index, item);".to_string(),
                    Kind::Struct(id) => format!(
                        "<{} as crate::rpc::SchemaStruct>::write_to(item, list.reborrow().get(index))?;",
                        self.mirror(*id, Scope::Top).unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                format!(
                    "{{ let mut list = {builder}.reborrow().init_{a}(crate::wire::list_len({value}.len())?);\n\
                     for (index, item) in (0u32..).zip({value}.iter()) {{ {set} }} }}\n"
                )
            }
            Kind::Void | Kind::Interface(_) | Kind::Other(_) => String::new(),
        }
    }

    fn render(&self) -> Result<String, CodegenError> {
        let mut out = String::new();
        out.push_str(HEADER);
        out.push_str(
            "//! Interface ids, method ordinals, typed clients and server dispatch for every\n\
             //! capOS interface, and owned mirrors of the plain schema structs.\n\n",
        );
        self.render_index(&mut out);
        for e in &self.enums {
            if e.capnp_path.rsplit("::").next() == Some(e.rust.as_str()) {
                let _ = writeln!(out, "pub use {};", e.capnp_path);
            } else {
                let _ = writeln!(out, "pub use {} as {};", e.capnp_path, e.rust);
            }
        }
        out.push('\n');
        for m in &self.mirrors {
            self.render_mirror(&mut out, m);
        }
        for i in &self.interfaces {
            self.render_module(&mut out, i);
            self.render_client(&mut out, i);
            self.render_server(&mut out, i);
        }
        Ok(out)
    }

    fn render_index(&self, out: &mut String) {
        out.push_str(
            "/// Every interface: (interface id, schema name).\n\
             pub const INTERFACES: &[(u64, &str)] = &[\n",
        );
        for i in &self.interfaces {
            let _ = writeln!(out, "({}::INTERFACE_ID, {}::NAME),", i.module, i.module);
        }
        out.push_str(
            "];\n\n\
             /// The schema name of the interface with id `interface_id`.\n\
             pub fn interface_name(interface_id: u64) -> Option<&'static str> {\n\
             INTERFACES.iter().find(|(id, _)| *id == interface_id).map(|(_, name)| *name)\n\
             }\n\n",
        );
    }

    fn render_mirror(&self, out: &mut String, m: &Mirror) {
        doc_lines(out, m.doc.as_deref());
        let eq = if self.has_float.get(&m.id).copied().unwrap_or(false) { "" } else { ", Eq" };
        let _ = writeln!(out, "#[derive(Clone, Debug, PartialEq{eq})]\npub struct {} {{", m.rust);
        let fields: Vec<&Field> = m.shape.fields.iter().filter(|f| f.kind != Kind::Void).collect();
        for f in &fields {
            doc_lines(out, f.doc.as_deref());
            let _ = writeln!(out, "pub {}: {},", f.ident, self.owned_type(&f.kind, Scope::Top));
        }
        out.push_str("}\n\n");
        let path = &m.capnp_path;
        let _ = writeln!(out, "impl crate::rpc::SchemaStruct for {} {{", m.rust);
        let _ = writeln!(out, "type Owned = {path}::Owned;\n");
        let reader = if fields.is_empty() { "_reader" } else { "reader" };
        let _ = writeln!(
            out,
            "fn read_from({reader}: {path}::Reader<'_>) -> ::capnp::Result<Self> {{\nOk(Self {{"
        );
        for f in &fields {
            let _ = writeln!(out, "{}: {},", f.ident, self.read_expr(f, "reader"));
        }
        out.push_str("})\n}\n\n");
        let builder = if fields.is_empty() { "_builder" } else { "mut builder" };
        let _ = writeln!(
            out,
            "fn write_to(&self, {builder}: {path}::Builder<'_>) -> ::capnp::Result<()> {{"
        );
        for f in &fields {
            let value = match f.kind {
                Kind::Prim(_) | Kind::Enum(_) | Kind::List(_) => format!("self.{}", f.ident),
                _ => format!("&self.{}", f.ident),
            };
            out.push_str(&self.write_stmt(f, "builder", &value));
        }
        out.push_str("Ok(())\n}\n}\n\n");
    }

    /// The value fields of a results struct: not Void, not caps.
    fn value_fields(shape: &StructShape) -> Vec<&Field> {
        shape
            .fields
            .iter()
            .filter(|f| f.kind != Kind::Void && !matches!(f.kind, Kind::Interface(_)))
            .collect()
    }

    fn returned_fields(shape: &StructShape) -> Vec<&Field> {
        shape.fields.iter().filter(|f| f.kind != Kind::Void).collect()
    }

    fn cap_fields(shape: &StructShape) -> Vec<&Field> {
        shape.fields.iter().filter(|f| matches!(f.kind, Kind::Interface(_))).collect()
    }

    fn reply_name(m: &Method) -> String {
        format!("{}Reply", camel_case(&m.name))
    }

    fn render_module(&self, out: &mut String, i: &Interface) {
        doc_lines(out, i.doc.as_deref());
        let _ = writeln!(out, "pub mod {} {{", i.module);
        let _ = writeln!(
            out,
            "/// The interface id of `{}`, as assigned by the schema.\n\
             pub const INTERFACE_ID: u64 = {:#018x};\n\
             /// The schema name of the interface.\n\
             pub const NAME: &str = \"{}\";\n",
            i.display, i.id, i.display
        );
        out.push_str("/// Method ordinals, as the schema numbers them.\npub mod method {\n");
        for m in &i.methods {
            let _ = writeln!(
                out,
                "/// `{}.{}`\npub const {}: u16 = {};",
                i.display, m.name, m.konst, m.ordinal
            );
        }
        out.push_str(
            "\n/// The schema name of the method with ordinal `ordinal`.\n\
             pub fn name(ordinal: u16) -> Option<&'static str> {\nmatch ordinal {\n",
        );
        for m in &i.methods {
            let _ = writeln!(out, "{} => Some(\"{}\"),", m.konst, m.name);
        }
        out.push_str("_ => None,\n}\n}\n}\n\n");

        let locals: Vec<&str> = i
            .methods
            .iter()
            .flat_map(|m| [m.local_params.as_deref(), m.local_results.as_deref()])
            .flatten()
            .collect();
        if !locals.is_empty() {
            let _ = writeln!(out, "pub use {}::{{{}}};\n", i.capnp_path, locals.join(", "));
        }

        for m in &i.methods {
            let fields = Self::returned_fields(&m.results);
            if self.plain_results(&m.results) && fields.len() > 1 {
                let eq = if fields.iter().any(|f| kind_has_float(&f.kind, &self.has_float)) {
                    ""
                } else {
                    ", Eq"
                };
                let _ = writeln!(
                    out,
                    "/// Results of [`{}Client::{}`](super::{}Client::{}).\n\
                     #[derive(Clone, Debug, PartialEq{eq})]\npub struct {} {{",
                    i.rust,
                    m.ident,
                    i.rust,
                    m.ident,
                    Self::reply_name(m)
                );
                for f in fields {
                    doc_lines(out, f.doc.as_deref());
                    if matches!(f.kind, Kind::Interface(_)) {
                        out.push_str("/// CapId of a result cap; it arrives through the ring.\n");
                    }
                    let _ = writeln!(
                        out,
                        "pub {}: {},",
                        f.ident,
                        self.owned_type(&f.kind, Scope::Module)
                    );
                }
                out.push_str("}\n\n");
            }
        }
        out.push_str("}\n\n");
    }

    fn render_client(&self, out: &mut String, i: &Interface) {
        let client = format!("{}Client", i.rust);
        let _ = writeln!(
            out,
            "/// A typed client for `{}` caps: each method encodes its params, makes one\n\
             /// call through the transport and decodes the results.\n\
             #[derive(Debug, Clone)]\n\
             pub struct {client}<T: crate::rpc::Transport> {{\ntransport: T,\ncap: u64,\n}}\n\n\
             impl<T: crate::rpc::Transport> {client}<T> {{\n\
             /// A client calling the `{}` cap `cap` (a CapId) through `transport`.\n\
             pub fn new(transport: T, cap: u64) -> Self {{\nSelf {{ transport, cap }}\n}}\n\n\
             /// The CapId this client calls.\n\
             pub fn cap_id(&self) -> u64 {{\nself.cap\n}}\n\n\
             /// The transport this client calls through.\n\
             pub fn transport(&self) -> &T {{\n&self.transport\n}}\n\n\
             /// Gives the transport back.\n\
             pub fn into_transport(self) -> T {{\nself.transport\n}}\n",
            i.display, i.display
        );
        for m in &i.methods {
            self.render_client_method(out, i, m);
        }
        out.push_str("}\n\n");
    }

    fn render_client_method(&self, out: &mut String, i: &Interface, m: &Method) {
        let plain_params = self.plain_params(&m.params);
        let plain_results = self.plain_results(&m.results);
        let params_fields: Vec<&Field> =
            m.params.fields.iter().filter(|f| f.kind != Kind::Void).collect();
        let mut taken: Vec<String> = params_fields.iter().map(|f| f.ident.clone()).collect();
        taken.extend(m.results.fields.iter().map(|f| f.ident.clone()));
        let builder = fresh("params", &taken);
        let reply = fresh("reply", &taken);
        let results = fresh("results", &taken);
        let build = fresh("build", &taken);

        // Signature.
        let mut docs: Vec<String> = m.doc.iter().cloned().collect();
        let mut args = Vec::new();
        if plain_params {
            for f in &params_fields {
                args.push(format!("{}: {}", f.ident, self.arg_type(&f.kind)));
            }
        } else {
            docs.push(format!(
                "The params have no plain Rust form ({}); `{build}` fills them in.",
                why_not_plain(&m.params, self)
            ));
            args.push(format!(
                "{build}: impl for<'a> FnOnce({}::Builder<'a>) -> ::capnp::Result<()>",
                m.params_path
            ));
        }
        let value_fields = Self::value_fields(&m.results);
        let returned = Self::returned_fields(&m.results);
        let caps = Self::cap_fields(&m.results);
        let ret = if !plain_results {
            docs.push(format!(
                "The results have no plain Rust form ({});\nread them from the returned message.",
                why_not_plain(&m.results, self)
            ));
            format!("crate::rpc::Reply<{}::Owned>", m.results_path)
        } else {
            match returned.as_slice() {
                [] => "()".to_string(),
                [only] => self.owned_type(&only.kind, Scope::Top),
                _ => format!("{}::{}", i.module, Self::reply_name(m)),
            }
        };
        if plain_results && !caps.is_empty() {
            let names: Vec<String> = caps.iter().map(|f| format!("`{}`", f.name)).collect();
            docs.push(format!(
                "Result caps ({}) arrive through the ring; their CapIds are returned.",
                names.join(", ")
            ));
        }
        doc_lines(out, Some(&docs.join("\n\n")));
        if args.len() + 1 > 7 {
            out.push_str("#[allow(clippy::too_many_arguments)]\n");
        }
        let _ = writeln!(
            out,
            "pub fn {}(&self{}) -> Result<{ret}, crate::rpc::CallError> {{",
            m.ident,
            args.iter().map(|a| format!(", {a}")).collect::<String>()
        );

        // The call.
        let _ = write!(
            out,
            "let {reply} = crate::rpc::call::<{}::Owned, T>(&self.transport, self.cap, {}::INTERFACE_ID, {}::method::{}, ",
            m.params_path, i.module, i.module, m.konst
        );
        if !plain_params {
            out.push_str(&build);
        } else if params_fields.is_empty() {
            out.push_str("|_| Ok(())");
        } else {
            let _ = writeln!(out, "|mut {builder}| {{");
            for f in &params_fields {
                out.push_str(&self.write_stmt(f, &builder, &f.ident));
            }
            out.push_str("Ok(())\n}");
        }
        out.push_str(")?;\n");

        // The results.
        if !plain_results {
            let _ = writeln!(
                out,
                "crate::rpc::keep_results::<{}::Owned>({reply})\n}}\n",
                m.results_path
            );
            return;
        }
        for (index, f) in caps.iter().enumerate() {
            let _ = writeln!(out, "let {} = {reply}.cap({index})?;", f.ident);
        }
        let param = if value_fields.is_empty() { "_".to_string() } else { results.clone() };
        let value = match returned.as_slice() {
            [] => "Ok(())".to_string(),
            [only] if matches!(only.kind, Kind::Interface(_)) => format!("Ok({})", only.ident),
            // `read_from` already returns `capnp::Result`.
            [only] if matches!(only.kind, Kind::Struct(_)) => {
                self.read_expr(only, &results).trim_end_matches('?').to_string()
            }
            [only] => format!("Ok({})", self.read_expr(only, &results)),
            many => {
                let mut s = format!("{}::{} {{", i.module, Self::reply_name(m));
                for f in many {
                    if matches!(f.kind, Kind::Interface(_)) {
                        let _ = write!(s, "{}, ", f.ident);
                    } else {
                        let _ = write!(s, "{}: {}, ", f.ident, self.read_expr(f, &results));
                    }
                }
                s.push('}');
                format!("Ok({s})")
            }
        };
        let _ = writeln!(
            out,
            "crate::rpc::read_results::<{}::Owned, _>(&{reply}, |{param}| {value})\n}}\n",
            m.results_path
        );
    }

    fn render_server(&self, out: &mut String, i: &Interface) {
        let server = format!("{}Server", i.rust);
        let returns_caps = i.methods.iter().any(|m| !Self::cap_fields(&m.results).is_empty());
        let _ = writeln!(
            out,
            "/// The server side of `{}`: one method per schema method, each reading\n\
             /// its params and filling in its results; see [`dispatch_{}`].",
            i.display, i.module
        );
        let _ = writeln!(out, "pub trait {server} {{");
        if returns_caps {
            out.push_str(
                "/// What this server hands back for a result cap: a kernel object\n\
                 /// reference in the kernel, a CapId in a userspace server. Result caps\n\
                 /// travel through the ring, never inside the results message.\n\
                 type Cap;\n\n",
            );
        }
        for m in &i.methods {
            let mut docs: Vec<String> = m.doc.iter().cloned().collect();
            let caps = Self::cap_fields(&m.results);
            let ret = match caps.as_slice() {
                [] => "()".to_string(),
                [_] => "Self::Cap".to_string(),
                many => format!("({})", vec!["Self::Cap"; many.len()].join(", ")),
            };
            if !caps.is_empty() {
                let names: Vec<String> = caps.iter().map(|f| format!("`{}`", f.name)).collect();
                docs.push(format!(
                    "Returns the result caps ({}), in that order; their fields in\n`results` stay null.",
                    names.join(", ")
                ));
            }
            doc_lines(out, Some(&docs.join("\n\n")));
            let _ = writeln!(
                out,
                "fn {}(&mut self, params: {}::Reader<'_>, results: {}::Builder<'_>) -> Result<{ret}, crate::rpc::ServerError>;\n",
                m.ident, m.params_path, m.results_path
            );
        }
        out.push_str("}\n\n");

        let (ok, ok_in) = if returns_caps {
            ("crate::rpc::Dispatched<S::Cap>", "::alloc::vec::Vec<S::Cap>")
        } else {
            ("::alloc::vec::Vec<u8>", "()")
        };
        let _ = writeln!(
            out,
            "/// Serves one call to a `{}` cap in `frame`: reads the params for\n\
             /// `method` from the frame, calls `server` and builds its results in the\n\
             /// frame. An unknown ordinal is\n\
             /// [`BadMethod`](crate::rpc::DispatchError::BadMethod); params that do not\n\
             /// decode are [`Malformed`](crate::rpc::DispatchError::Malformed).",
            i.display
        );
        let (server_arg, frame_arg) =
            if i.methods.is_empty() { ("_server", "_frame") } else { ("server", "frame") };
        let _ = writeln!(
            out,
            "pub fn dispatch_{}_in<S: {server} + ?Sized, F: crate::rpc::CallFrame>({server_arg}: &mut S, method: u16, {frame_arg}: &mut F) -> Result<{ok_in}, crate::rpc::DispatchError> {{",
            i.module
        );
        if i.methods.is_empty() {
            out.push_str("Err(crate::rpc::DispatchError::BadMethod(method))\n}\n\n");
        } else {
            out.push_str("match method {\n");
            for m in &i.methods {
                let caps = Self::cap_fields(&m.results);
                let map = match (returns_caps, caps.len()) {
                    (false, _) => String::new(),
                    (true, 0) => ".map(|()| ::alloc::vec::Vec::new())".to_string(),
                    (true, 1) => ".map(|cap| ::alloc::vec![cap])".to_string(),
                    (true, n) => {
                        let names: Vec<String> = (0..n).map(|k| format!("cap{k}")).collect();
                        format!(
                            ".map(|({})| ::alloc::vec![{}])",
                            names.join(", "),
                            names.join(", ")
                        )
                    }
                };
                let _ = writeln!(
                    out,
                    "{}::method::{} => F::serve::<{}::Owned, {}::Owned, _>(frame, |params, results| server.{}(params, results)){map},",
                    i.module, m.konst, m.params_path, m.results_path, m.ident
                );
            }
            out.push_str("other => Err(crate::rpc::DispatchError::BadMethod(other)),\n}\n}\n\n");
        }

        let _ = writeln!(
            out,
            "/// Serves one call to a `{}` cap: decodes `params` for `method`, calls\n\
             /// `server` and encodes its results (see [`dispatch_{}_in`]).",
            i.display, i.module
        );
        let _ = writeln!(
            out,
            "pub fn dispatch_{m}<S: {server} + ?Sized>(server: &mut S, method: u16, params: &[u8]) -> Result<{ok}, crate::rpc::DispatchError> {{\n\
             let mut frame = crate::rpc::HeapFrame::new(params);",
            m = i.module
        );
        if returns_caps {
            let _ = writeln!(
                out,
                "let caps = dispatch_{}_in(server, method, &mut frame)?;\n\
                 Ok(crate::rpc::Dispatched {{ results: frame.into_results(), caps }})\n}}\n",
                i.module
            );
        } else {
            let _ = writeln!(
                out,
                "dispatch_{}_in(server, method, &mut frame)?;\nOk(frame.into_results())\n}}\n",
                i.module
            );
        }
    }
}

/// Why a params or results struct has no plain Rust form, for doc comments.
fn why_not_plain(shape: &StructShape, schema: &Schema) -> String {
    if let Some(why) = shape.irregular {
        return why.to_string();
    }
    for f in &shape.fields {
        match &f.kind {
            Kind::Other(why) => return format!("`{}` is {why}", f.name),
            Kind::Interface(_) => return format!("`{}` is a cap", f.name),
            Kind::Struct(_) | Kind::List(_) if !schema.owned(&f.kind) => {
                return format!("`{}` holds a struct without a plain form", f.name)
            }
            _ => {}
        }
    }
    "unknown".to_string()
}
