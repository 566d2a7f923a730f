# The catalog: categories, model lists, the model card, search.
catalog-category = { $category ->
    [image] 🖼 Images
    [video] 🎬 Video
    [audio] 🎧 Audio
   *[upscale] 🔍 Upscale
    }: { $count ->
        [one] { $count } model
       *[other] { $count } models
    }, cheapest first.
catalog-free = 🆓 Free models: { $count ->
        [one] { $count } model
       *[other] { $count } models
    }.
catalog-found = Found for “{ $query }”: { $count ->
        [one] { $count } model
       *[other] { $count } models
    }, cheapest first. Type another name to search again.
catalog-not-found = Nothing found for “{ $query }”. Type another name, or open the menu.
catalog-search-prompt = Type part of a model name, for example “kling” or “flux”:
catalog-item = { $title } · { $price }
catalog-free-mark = 🆓 free
catalog-from = from { $price }
catalog-card = { $title }{ $free ->
        [yes] {" "}🆓
       *[no] {""}
    }
    { $description }

    You give: { $inputs }
    Price: { $price }
    Usually takes: { $eta ->
        [image] about a minute
        [video] 2-10 minutes
        [audio] 1-3 minutes
       *[upscale] 1-5 minutes
    }
catalog-range = { $low } – { $high }
catalog-optional = optional: { $names }
catalog-generate = ✨ Generate
catalog-gone = This model is not available any more. Here is the menu.
