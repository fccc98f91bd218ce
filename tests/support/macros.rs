//! Assertion macros that print what differed as blocks, so multi-line output stays readable
//! (after ripgrep's `tests/macros.rs`).

/// Asserts two strings (or anything that derefs to `str`) are equal, printing both as blocks.
macro_rules! eqnice {
    ($expected:expr, $got:expr $(,)?) => {{
        let expected: &str = &*$expected;
        let got: &str = &*$got;
        if expected != got {
            let rule = "~".repeat(79);
            panic!(
                "\nprinted outputs differ!\n\nexpected:\n{rule}\n{expected}\n{rule}\n\n\
                 got:\n{rule}\n{got}\n{rule}\n"
            );
        }
    }};
    ($expected:expr, $got:expr, $($context:tt)+) => {{
        let expected: &str = &*$expected;
        let got: &str = &*$got;
        if expected != got {
            let rule = "~".repeat(79);
            panic!(
                "\nprinted outputs differ: {}\n\nexpected:\n{rule}\n{expected}\n{rule}\n\n\
                 got:\n{rule}\n{got}\n{rule}\n",
                format!($($context)+)
            );
        }
    }};
}

/// Asserts `haystack` contains `needle`, printing the whole haystack when it does not.
macro_rules! assert_contains {
    ($haystack:expr, $needle:expr $(,)?) => {{
        let haystack: &str = &*$haystack;
        let needle: &str = &*$needle;
        if !haystack.contains(needle) {
            let rule = "~".repeat(79);
            panic!(
                "\nexpected to find:\n{rule}\n{needle}\n{rule}\n\nin:\n{rule}\n{haystack}\n{rule}\n"
            );
        }
    }};
}

/// Asserts `haystack` does not contain `needle`, printing the whole haystack when it does.
macro_rules! assert_not_contains {
    ($haystack:expr, $needle:expr $(,)?) => {{
        let haystack: &str = &*$haystack;
        let needle: &str = &*$needle;
        if haystack.contains(needle) {
            let rule = "~".repeat(79);
            panic!("\ndid not expect to find:\n{rule}\n{needle}\n{rule}\n\nin:\n{rule}\n{haystack}\n{rule}\n");
        }
    }};
}
