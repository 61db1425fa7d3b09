-- Another client's module: the lab client must not be able to require it.
return { secret = "other" }
