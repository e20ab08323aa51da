//! What carrying a request's context costs: reading the current one, making one current
//! around a call, and reading and writing `grpc-timeout`, beside an atomic add and a clock
//! read of the same run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_benches::floors;
use rampart_core::{Criticality, Deadline, RequestContext, grpc_timeout};

fn context(c: &mut Criterion) {
    let mut group = c.benchmark_group("context");
    group.throughput(Throughput::Elements(1));
    floors(&mut group);

    group.bench_function("request_context/current", |b| {
        b.iter(|| black_box(RequestContext::current()));
    });
    let context = RequestContext::new()
        .with_criticality(Criticality::SHEDDABLE)
        .with_deadline(Deadline::at(Duration::from_secs(5)));
    group.bench_function("request_context/enter_and_leave", |b| {
        b.iter(|| drop(black_box(context).enter()));
    });

    // The header values the facade reads and writes: milliseconds from a gRPC client, and the
    // finest unit rampart writes.
    for value in ["250m", "99999999n"] {
        group.bench_function(format!("grpc_timeout/parse/{value}"), |b| {
            b.iter(|| grpc_timeout::parse(black_box(value)));
        });
    }
    group.bench_function("grpc_timeout/format", |b| {
        b.iter(|| grpc_timeout::format(black_box(Duration::from_millis(250))));
    });
    group.finish();
}

criterion_group!(benches, context);
criterion_main!(benches);
