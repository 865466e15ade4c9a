# What R (haven) reads from every format of a delivery, as JSON for the round-trip test:
# per format and column the values as text (NA as null), the variable label, the value labels
# (code -> label) and the user-missing values.  Rscript read_back.R PACKAGE OUT.json
args <- commandArgs(trailingOnly = TRUE)
pkg <- args[[1]]
suppressPackageStartupMessages({
  library(haven)
  library(jsonlite)
})

describe <- function(d) {
  cols <- lapply(names(d), function(n) {
    x <- d[[n]]
    labels <- attr(x, "labels", exact = TRUE)
    list(
      label = attr(x, "label", exact = TRUE),
      labels = if (is.null(labels)) NULL else as.list(setNames(names(labels), as.character(unname(labels)))),
      na_values = as.character(attr(x, "na_values", exact = TRUE)),
      values = as.character(unclass(x))
    )
  })
  names(cols) <- names(d)
  cols
}

readers <- list(
  "data.csv" = function(p) read.csv(p, colClasses = "character", na.strings = character(0),
                                    encoding = "UTF-8", check.names = FALSE),
  "data.dta" = function(p) read_dta(p),
  "data.sav" = function(p) read_sav(p, user_na = TRUE),
  "data.xpt" = function(p) read_xpt(p)
)
seen <- list()
for (name in names(readers)) {
  path <- file.path(pkg, name)
  if (file.exists(path)) seen[[name]] <- describe(readers[[name]](path))
}
write_json(seen, args[[2]], auto_unbox = TRUE, null = "null", na = "null", digits = NA)
