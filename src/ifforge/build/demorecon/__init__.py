"""DeMoRecon's pieces (the `decompose_modify_reconstruct` strategy): parsing of the E.2/E.3 answers, the build
steps, the assembly into sft/dpo/eval/det/plain, and the paper's Table 1 statistics and Figure 2."""
