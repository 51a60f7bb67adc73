"""An article's text on its way in: cleaned (`clean`), kept once (`dedupe`), cut into
sentences (`sentences`) and packed into passages that fit the model's window (`passages`)."""
