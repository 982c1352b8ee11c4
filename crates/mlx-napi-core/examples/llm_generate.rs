//! Streams a generation and prints timings, for checking and benchmarking the
//! LLM engine without Node:
//!
//! ```text
//! cargo run --release -p mlx-napi-core --example llm_generate -- \
//!     MODEL_DIR_OR_REPO "prompt" [--max-tokens N] [--dtype auto|float16|bfloat16|float32] \
//!     [--chat] [--temperature T] [--seed S] [--ignore-eos]
//! ```

use std::{io::Write, ops::ControlFlow};

use mlx_napi_core::{
    llm::{GenerateOptions, Llm, LoadOptions, Prompt},
    loading::DtypeChoice,
    tokenizer::ChatMessage,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: llm_generate MODEL PROMPT [--max-tokens N] [--dtype D] [--chat] [--temperature T] [--seed S] [--ignore-eos]");
        std::process::exit(2);
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mut options = GenerateOptions {
        max_tokens: flag("--max-tokens").map_or(Ok(128), |v| v.parse())?,
        ignore_eos: args.iter().any(|a| a == "--ignore-eos"),
        ..Default::default()
    };
    options.sampler.temperature = flag("--temperature").map_or(Ok(0.0), |v| v.parse())?;
    options.sampler.seed = flag("--seed").map(|v| v.parse()).transpose()?;
    let dtype = DtypeChoice::parse(&flag("--dtype").unwrap_or_else(|| "auto".into()))?;

    let start = std::time::Instant::now();
    let llm = Llm::load(
        &args[0],
        LoadOptions {
            dtype,
            ..Default::default()
        },
    )?;
    eprintln!(
        "loaded {} ({:?}) in {:.0} ms",
        llm.model_type(),
        llm.dtype(),
        start.elapsed().as_secs_f64() * 1e3
    );

    let messages = [ChatMessage::new("user", args[1].clone())];
    let prompt = if args.iter().any(|a| a == "--chat") {
        Prompt::Messages(&messages)
    } else {
        Prompt::Text(&args[1])
    };
    let mut stdout = std::io::stdout();
    let result = llm.generate(prompt, &options, &mut |chunk| {
        let _ = stdout.write_all(chunk.text.as_bytes());
        let _ = stdout.flush();
        ControlFlow::Continue(())
    })?;
    println!();
    let t = result.timings;
    eprintln!(
        "finish={} prompt={} completion={} ttft={:.1}ms prefill={:.1} tok/s decode={:.1} tok/s host_reads={}",
        result.finish_reason.as_str(),
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
        t.ttft_ms,
        t.prefill_tokens_per_s,
        t.decode_tokens_per_s,
        result.host_reads
    );
    Ok(())
}
