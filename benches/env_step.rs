//! Environment steps: Pendulum-v1 and the large point-mass maze, one step at a
//! time with a fixed action (the evaluator's inner loop).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use chunkql::env::make;

fn bench_env(c: &mut Criterion, name: &str, action: &[f32]) {
    let mut env = make(name).unwrap();
    let mut obs = vec![0f32; env.spec().obs_dim];
    env.reset(0, &mut obs);
    let mut group = c.benchmark_group("env_step");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| {
            let step = env.step(black_box(action), &mut obs);
            if step.terminated || step.truncated {
                env.reset(1, &mut obs);
            }
            black_box(&obs);
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_env(c, "pendulum", &[0.5]);
    bench_env(c, "pointmaze-large", &[0.3, -0.7]);
}

criterion_group!(env_step, benches);
criterion_main!(env_step);
